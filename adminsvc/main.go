package main

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/url"
	"os"
	"os/signal"
	"sync"
	"syscall"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/kong-service-registry/service-registry/internal/kongsync"
	"github.com/kong-service-registry/service-registry/internal/registry"
	"github.com/kong-service-registry/service-registry/internal/translator"
	"github.com/kong-service-registry/service-registry/migrations"
)

var version = "dev"

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGINT, syscall.SIGTERM)
	code := run(ctx, os.Args[1:], os.Getenv, os.Stdout, os.Stderr)
	stop()
	os.Exit(code)
}

// run is main without the process: testable, returns the exit code.
func run(ctx context.Context, args []string, getenv func(string) string, stdout, stderr io.Writer) int {
	if len(args) > 0 && args[0] == "version" {
		fmt.Fprintln(stdout, version)
		return 0
	}
	s, pos, err := parseSettings("adminsvc", args, getenv, stderr)
	if errors.Is(err, flag.ErrHelp) {
		return 0
	}
	if err != nil {
		fmt.Fprintln(stderr, "adminsvc:", err)
		return 2
	}
	// Command words may come before or after the flags; anything left over
	// is a usage error rather than silently starting the server.
	cmd := "serve"
	if len(pos) > 0 {
		cmd, pos = pos[0], pos[1:]
	}
	var sub string
	switch cmd {
	case "serve":
		if len(pos) > 0 {
			fmt.Fprintf(stderr, "adminsvc: unexpected arguments %q\nusage: adminsvc [serve] [flags]\n", pos)
			return 2
		}
	case "migrate":
		if len(pos) != 1 {
			fmt.Fprintln(stderr, "usage: adminsvc migrate up|status [flags]")
			return 2
		}
		sub = pos[0]
	case "import":
		if len(pos) != 1 {
			fmt.Fprintln(stderr, "usage: adminsvc import [flags] routes.json")
			return 2
		}
	case "version":
		fmt.Fprintln(stdout, version)
		return 0
	default:
		fmt.Fprintf(stderr, "unknown command %q (serve, migrate, import, version)\n", cmd)
		return 2
	}
	log := newLogger(s, stderr)
	switch cmd {
	case "migrate":
		return runMigrate(ctx, s, sub, stdout, log)
	case "import":
		return runImport(ctx, s, pos[0], stdout, log)
	}
	if err := serve(ctx, s, log, nil); err != nil {
		log.Error("adminsvc stopped", "error", err)
		return 1
	}
	return 0
}

func newLogger(s *Settings, w io.Writer) *slog.Logger {
	var level slog.Level
	if err := level.UnmarshalText([]byte(s.LogLevel)); err != nil {
		level = slog.LevelInfo
	}
	opts := &slog.HandlerOptions{Level: level}
	if s.LogFormat == "text" {
		return slog.New(slog.NewTextHandler(w, opts))
	}
	return slog.New(slog.NewJSONHandler(w, opts))
}

func runMigrate(ctx context.Context, s *Settings, sub string, stdout io.Writer, log *slog.Logger) int {
	rdb, _, err := newRedis(s)
	if err != nil {
		log.Error("migrate", "error", err)
		return 1
	}
	defer rdb.Close()
	ctx, cancel := context.WithTimeout(ctx, time.Minute)
	defer cancel()
	switch sub {
	case "status":
		st, err := migrations.GetStatus(ctx, rdb, s.RedisPrefix)
		fmt.Fprintf(stdout, "keyspace version: %d\nlatest known: %d\n", st.Current, st.Latest)
		for _, m := range st.Pending {
			fmt.Fprintf(stdout, "pending: %d %s\n", m.Version, m.Name)
		}
		if err != nil {
			log.Error("migrate status", "error", err)
			return 1
		}
		if len(st.Pending) == 0 {
			fmt.Fprintln(stdout, "up to date")
		}
		return 0
	case "up":
		done, err := migrations.Up(ctx, rdb, s.RedisPrefix)
		for _, m := range done {
			fmt.Fprintf(stdout, "applied: %d %s\n", m.Version, m.Name)
		}
		if err != nil {
			log.Error("migrate up", "error", err)
			return 1
		}
		if len(done) == 0 {
			fmt.Fprintln(stdout, "up to date")
		}
		return 0
	}
	fmt.Fprintf(stdout, "unknown migrate command %q (up, status)\n", sub)
	return 2
}

// runImport loads a GET /routes dump ({"routes": [...]} or a bare array).
func runImport(ctx context.Context, s *Settings, file string, stdout io.Writer, log *slog.Logger) int {
	raw, err := os.ReadFile(file)
	if err != nil {
		log.Error("import", "error", err)
		return 1
	}
	var rows []map[string]json.RawMessage
	var wrapped struct {
		Routes []map[string]json.RawMessage `json:"routes"`
	}
	if err := json.Unmarshal(raw, &wrapped); err == nil && wrapped.Routes != nil {
		rows = wrapped.Routes
	} else if err := json.Unmarshal(raw, &rows); err != nil {
		log.Error("import: expected a GET /routes dump", "file", file, "error", err)
		return 1
	}
	rdb, _, err := newRedis(s)
	if err != nil {
		log.Error("import", "error", err)
		return 1
	}
	defer rdb.Close()
	if code := checkKeyspace(ctx, s, rdb, log); code != 0 {
		return code
	}
	store := registry.NewStore(rdb, registry.Options{Prefix: s.RedisPrefix})
	var created, same, conflicts, invalid int
	for i, row := range rows {
		req, _, err := parseRegister(row)
		if err != nil {
			invalid++
			log.Warn("import: invalid route skipped", "index", i, "error", err)
			continue
		}
		rctx, cancel := context.WithTimeout(ctx, storeTimeout)
		_, isNew, err := store.RegisterRoute(rctx, registry.Route{Host: req.Host, Path: req.Path, Backend: req.Backend, Options: req.Options})
		cancel()
		switch {
		case errors.Is(err, registry.ErrRouteExists):
			conflicts++
			log.Warn("import: route exists with another backend or options", "host", req.Host, "path", req.Path)
		case err != nil:
			log.Error("import stopped", "error", err, "index", i)
			fmt.Fprintf(stdout, "imported %d of %d routes before an error: %d created, %d already present\n", created+same, len(rows), created, same)
			return 1
		case isNew:
			created++
			log.Info("audit", "action", "import", "host", req.Host, "path", req.Path, "backend", req.Backend)
		default:
			same++
		}
	}
	fmt.Fprintf(stdout, "%d routes: %d created, %d already present, %d conflicts, %d invalid\n", len(rows), created, same, conflicts, invalid)
	if conflicts+invalid > 0 {
		return 1
	}
	return 0
}

// checkKeyspace refuses a keyspace newer than this binary knows.
func checkKeyspace(ctx context.Context, s *Settings, rdb redis.UniversalClient, log *slog.Logger) int {
	cctx, cancel := context.WithTimeout(ctx, 5*time.Second)
	defer cancel()
	if _, err := migrations.GetStatus(cctx, rdb, s.RedisPrefix); errors.Is(err, migrations.ErrNewerKeyspace) {
		log.Error("refusing to run", "error", err)
		return 1
	}
	return 0
}

// serve runs the registry API until ctx ends. ready, when set, receives the
// listen address once the server accepts connections (tests).
func serve(ctx context.Context, s *Settings, log *slog.Logger, ready chan<- string) error {
	keys, err := s.loadAPIKeys()
	if err != nil {
		return err
	}
	if len(keys) == 0 {
		log.Warn("registry API is open: no API keys configured (set SR_API_KEYS or SR_API_KEYS_FILE)")
	}
	rdb, ropt, err := newRedis(s)
	if err != nil {
		return err
	}
	defer rdb.Close()
	store := registry.NewStore(rdb, registry.Options{Prefix: s.RedisPrefix})

	var bg sync.WaitGroup
	defer bg.Wait()
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	if !s.NoMigrate {
		if err := migrateAtStart(ctx, s, rdb, log, &bg); err != nil {
			return err
		}
	} else if checkKeyspace(ctx, s, rdb, log) != 0 {
		return migrations.ErrNewerKeyspace
	}

	var base []byte
	if s.KongBaseConfig != "" {
		if base, err = os.ReadFile(s.KongBaseConfig); err != nil {
			return fmt.Errorf("kong base config: %w", err)
		}
	}
	m := newMetrics()
	var headers http.Header
	if s.KongAdminToken != "" {
		headers = http.Header{"Kong-Admin-Token": {s.KongAdminToken}}
	}
	syncer, err := kongsync.NewSyncer(kongsync.Options{
		AdminURL: s.KongAdminURL, Mode: s.KongMode, Headers: headers, Timeout: s.KongTimeout,
		Concurrency: s.KongConcurrency, BaseConfig: base, Logger: log, ObserveLatency: m.observeKong,
	})
	if err != nil {
		return err
	}
	rec, err := kongsync.NewReconciler(kongsync.ReconcilerOptions{
		Source: store, Syncer: syncer, Redis: rdb, Prefix: s.RedisPrefix, Interval: s.Reconcile,
		Debounce: s.SyncDebounce, MaxDelay: s.SyncMaxDelay, LeaseTTL: s.LeaseTTL,
		Translate: translator.Options{Redis: pluginRedis(s, ropt)}, ReplicaID: s.ReplicaID, Logger: log,
		OnApply: func(r kongsync.Result, err error) {
			m.reconcileRuns.Add(1)
			if err != nil {
				m.reconcileErrors.Add(1)
			}
			if r.Mode == kongsync.ModeDB {
				m.reconcileWrites.Add(int64(r.Changes()))
			}
			if r.Pushed {
				m.configPushes.Add(1)
			}
			m.kongRefused.Add(int64(len(r.Refused)))
		},
	})
	if err != nil {
		return err
	}
	srv, err := newServer(s, log, rdb, store, syncer, rec, keys, m)
	if err != nil {
		return err
	}
	defer srv.close()

	ln, err := net.Listen("tcp", s.Listen)
	if err != nil {
		return fmt.Errorf("listening on %s: %w", s.Listen, err)
	}
	log.Info("adminsvc listening", "addr", ln.Addr().String(), "version", version, "kong_admin_url", redactURL(s.KongAdminURL),
		"kong_mode", s.KongMode, "redis", redactURL(s.RedisURL), "api_keys", len(keys), "rate_limit_per_min", s.RateLimit)

	bg.Add(2)
	go func() {
		defer bg.Done()
		_ = rec.Run(ctx)
	}()
	go func() {
		defer bg.Done()
		store.RunExpiry(ctx, time.Second, func() bool { return rec.Stats().Leader }, log)
	}()
	serveErr := make(chan error, 1)
	go func() {
		srv.e.Listener = ln
		serveErr <- srv.e.Start("")
	}()
	if ready != nil {
		ready <- ln.Addr().String()
	}
	select {
	case err := <-serveErr:
		cancel()
		if !errors.Is(err, http.ErrServerClosed) {
			return err
		}
		return nil
	case <-ctx.Done():
	}
	log.Info("adminsvc shutting down", "timeout", s.ShutdownTimeout.String())
	srv.close()
	sctx, scancel := context.WithTimeout(context.Background(), s.ShutdownTimeout)
	defer scancel()
	if err := srv.e.Shutdown(sctx); err != nil {
		log.Warn("graceful shutdown incomplete", "error", err)
	}
	cancel()
	return nil
}

// migrateAtStart applies pending migrations. A newer keyspace is fatal; an
// unreachable Redis is not (the API answers 503 until it is back), so the
// migration is retried in the background.
func migrateAtStart(ctx context.Context, s *Settings, rdb redis.UniversalClient, log *slog.Logger, bg *sync.WaitGroup) error {
	try := func() error {
		mctx, cancel := context.WithTimeout(ctx, 10*time.Second)
		defer cancel()
		done, err := migrations.Up(mctx, rdb, s.RedisPrefix)
		for _, m := range done {
			log.Info("keyspace migration applied", "version", m.Version, "name", m.Name)
		}
		return err
	}
	err := try()
	if err == nil {
		return nil
	}
	if errors.Is(err, migrations.ErrNewerKeyspace) {
		return err
	}
	log.Error("keyspace migration not possible yet; retrying in the background", "error", err)
	bg.Add(1)
	go func() {
		defer bg.Done()
		t := time.NewTicker(5 * time.Second)
		defer t.Stop()
		for {
			select {
			case <-ctx.Done():
				return
			case <-t.C:
			}
			err := try()
			if err == nil {
				return
			}
			if errors.Is(err, migrations.ErrNewerKeyspace) {
				log.Error("keyspace is newer than this adminsvc; registry writes may be unsafe", "error", err)
				return
			}
		}
	}()
	return nil
}

// redactURL hides the password of a URL for logs and --help. url.Redacted
// knows where userinfo ends (the last '@' before the host), so a password
// containing '@' does not leak; an unparsable URL is not shown at all.
func redactURL(u string) string {
	p, err := url.Parse(u)
	if err != nil {
		return "(unparsable url)"
	}
	return p.Redacted()
}
