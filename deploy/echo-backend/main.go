// Command echo-backend is the quick start's demo backend: it answers every
// request with a JSON description of what it received and which instance
// answered, so a request routed through Kong shows where it went.
//
// It is a demo, not a product: no configuration beyond ECHO_LISTEN and
// ECHO_NAME, and nothing in the registry imports it.
package main

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"log/slog"
	"net/http"
	"os"
	"os/signal"
	"syscall"
	"time"
)

var version = "dev"

func main() {
	check := flag.Bool("check", false, "GET this server's /health and exit 0 if healthy (container health check)")
	flag.Parse()
	listen := envOr("ECHO_LISTEN", ":8080")
	name := envOr("ECHO_NAME", hostname())
	if *check {
		if err := selfCheck(listen); err != nil {
			fmt.Fprintln(os.Stderr, "echo-backend:", err)
			os.Exit(1)
		}
		return
	}
	log := slog.New(slog.NewJSONHandler(os.Stderr, nil))

	srv := &http.Server{
		Addr:              listen,
		Handler:           handler(name),
		ReadHeaderTimeout: 5 * time.Second,
	}
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGINT, syscall.SIGTERM)
	defer stop()
	go func() {
		<-ctx.Done()
		shutdown, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		_ = srv.Shutdown(shutdown)
	}()
	log.Info("echo-backend listening", "addr", listen, "name", name, "version", version)
	if err := srv.ListenAndServe(); err != nil && !errors.Is(err, http.ErrServerClosed) {
		log.Error("echo-backend stopped", "err", err)
		os.Exit(1)
	}
}

func handler(name string) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path == "/health" {
			w.Header().Set("Content-Type", "application/json")
			_, _ = w.Write([]byte(`{"status":"healthy"}`))
			return
		}
		w.Header().Set("Content-Type", "application/json")
		_ = json.NewEncoder(w).Encode(map[string]any{
			"instance": name,
			"method":   r.Method,
			"host":     r.Host,
			"path":     r.URL.Path,
			"query":    r.URL.RawQuery,
			"headers":  r.Header,
		})
	})
}

func envOr(key, def string) string {
	if v := os.Getenv(key); v != "" {
		return v
	}
	return def
}

func hostname() string {
	h, err := os.Hostname()
	if err != nil {
		return "echo"
	}
	return h
}

// selfCheck exists because the distroless image has no curl or wget.
func selfCheck(listen string) error {
	hc := &http.Client{Timeout: 2 * time.Second}
	resp, err := hc.Get("http://127.0.0.1" + portOf(listen) + "/health")
	if err != nil {
		return fmt.Errorf("health check: %w", err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return fmt.Errorf("health check: status %d", resp.StatusCode)
	}
	return nil
}

// portOf turns ":8080" or "0.0.0.0:8080" into ":8080".
func portOf(listen string) string {
	for i := len(listen) - 1; i >= 0; i-- {
		if listen[i] == ':' {
			return listen[i:]
		}
	}
	return ":" + listen
}
