package main

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"os"
	"os/signal"
	"strings"
	"syscall"
	"time"

	"github.com/kong-service-registry/service-registry/adminsvc/client"
)

var version = "dev"

// Exit codes; see doc.go.
const (
	exitOK          = 0
	exitUsage       = 1
	exitRefused     = 2
	exitUnavailable = 3
)

const usage = `srctl — command line for the Kong service registry (adminsvc)

Usage: srctl [global flags] <command> [flags]

Commands:
  register     register a route (--host --path --backend) or a service config (--config)
  deregister   remove a route (--host --path) or a service config's routes (--config)
  routes       list registered routes
  services     list /v1 services (--tags a,b) or show one (srctl services NAME)
  instance     put | delete | weight: manage a /v1 instance
  heartbeat    renew a TTL instance's lease once (--service --id)
  maintenance  switch a service's maintenance mode (--service, --off, --message)
  health       exit 0 when the registry is healthy, 3 when not
  run          register, renew the lease, deregister on SIGTERM (--config or flags)
  version      print the version

Global flags (also accepted after the command):
  --registry URL   registry address (env SR_REGISTRY_URL, default http://127.0.0.1:81)
  --api-key KEY    API key (env SR_API_KEY)
  --json           print the API's JSON answers instead of text
  --timeout D      bound for the whole command including retries (default 30s)
  --retries N      attempts for connection errors and 5xx (default 4; 1 = no retry)

Exit codes: 0 ok, 1 usage or bad config file, 2 refused by the registry (4xx),
3 registry unavailable (connection error, timeout, 5xx) or unhealthy.
`

// globals are the flags every command accepts.
type globals struct {
	registry string
	apiKey   string
	json     bool
	timeout  time.Duration
	retries  int
}

func (g *globals) register(fs *flag.FlagSet) {
	fs.StringVar(&g.registry, "registry", g.registry, "registry address (env SR_REGISTRY_URL)")
	fs.StringVar(&g.apiKey, "api-key", g.apiKey, "API key (env SR_API_KEY)")
	fs.BoolVar(&g.json, "json", g.json, "print JSON")
	fs.DurationVar(&g.timeout, "timeout", g.timeout, "bound for the whole command")
	fs.IntVar(&g.retries, "retries", g.retries, "attempts on connection errors and 5xx")
}

// app carries what a command needs; out and errOut are swappable for tests
// of the process as a whole (the tests run the built binary).
type app struct {
	g      globals
	out    io.Writer
	errOut io.Writer
	// registryFromFile is a service config's registryUrl, used when neither
	// the flag nor the environment names a registry.
	registryFromFile string
	registrySet      bool
}

// usageError is a bad invocation: exit 1.
type usageError struct{ msg string }

func (e usageError) Error() string { return e.msg }

func usagef(format string, args ...any) error { return usageError{fmt.Sprintf(format, args...)} }

func main() {
	os.Exit(run(os.Args[1:], os.Stdout, os.Stderr))
}

func run(args []string, stdout, stderr io.Writer) int {
	a := &app{out: stdout, errOut: stderr}
	a.g = globals{
		registry: os.Getenv("SR_REGISTRY_URL"),
		apiKey:   os.Getenv("SR_API_KEY"),
		timeout:  30 * time.Second,
		retries:  4,
	}
	a.registrySet = a.g.registry != ""

	top := flag.NewFlagSet("srctl", flag.ContinueOnError)
	top.SetOutput(io.Discard)
	a.g.register(top)
	if err := top.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			fmt.Fprint(stdout, usage)
			return exitOK
		}
		fmt.Fprintf(stderr, "srctl: %v\n\n%s", err, usage)
		return exitUsage
	}
	rest := top.Args()
	if len(rest) == 0 {
		fmt.Fprint(stderr, usage)
		return exitUsage
	}
	cmd, cmdArgs := rest[0], rest[1:]
	commands := map[string]func(context.Context, []string) error{
		"register":    a.cmdRegister,
		"deregister":  a.cmdDeregister,
		"routes":      a.cmdRoutes,
		"services":    a.cmdServices,
		"instance":    a.cmdInstance,
		"heartbeat":   a.cmdHeartbeat,
		"maintenance": a.cmdMaintenance,
		"health":      a.cmdHealth,
		"run":         a.cmdRun,
		"version":     a.cmdVersion,
		"help":        func(context.Context, []string) error { fmt.Fprint(stdout, usage); return nil },
	}
	f, ok := commands[cmd]
	if !ok {
		fmt.Fprintf(stderr, "srctl: unknown command %q\n\n%s", cmd, usage)
		return exitUsage
	}
	ctx := context.Background()
	if cmd != "run" {
		var cancel context.CancelFunc
		ctx, cancel = context.WithTimeout(ctx, a.g.timeout)
		defer cancel()
		// Ctrl-C ends a waiting command cleanly too.
		var stop context.CancelFunc
		ctx, stop = signal.NotifyContext(ctx, os.Interrupt, syscall.SIGTERM)
		defer stop()
	}
	err := f(ctx, cmdArgs)
	return a.report(err)
}

// report prints err and maps it to the exit code.
func (a *app) report(err error) int {
	if err == nil {
		return exitOK
	}
	code := exitCode(err)
	fmt.Fprintf(a.errOut, "srctl: %v\n", err)
	if a.g.json && code != exitUsage {
		body := map[string]any{"error": err.Error(), "exit_code": code}
		var apiErr *client.APIError
		if errors.As(err, &apiErr) {
			body["status"] = apiErr.StatusCode
			body["error"] = apiErr.Message
		}
		a.printJSON(body)
	}
	return code
}

func exitCode(err error) int {
	var ue usageError
	var apiErr *client.APIError
	switch {
	case errors.As(err, &ue):
		return exitUsage
	case errors.Is(err, errUnhealthy):
		return exitUnavailable
	case errors.As(err, &apiErr) && apiErr.StatusCode >= 400 && apiErr.StatusCode < 500:
		return exitRefused
	default:
		// 5xx, connection refused, timeouts, undecodable answers.
		return exitUnavailable
	}
}

var errUnhealthy = errors.New("registry unhealthy")

// newFlags is a command's flag set with the global flags registered too.
func (a *app) newFlags(name string) *flag.FlagSet {
	fs := flag.NewFlagSet("srctl "+name, flag.ContinueOnError)
	fs.SetOutput(a.errOut)
	a.g.register(fs)
	return fs
}

func (a *app) parse(fs *flag.FlagSet, args []string) error {
	before := a.g.registry
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return usagef("help requested")
		}
		return usageError{err.Error()}
	}
	if a.g.registry != before {
		a.registrySet = true
	}
	return nil
}

func (a *app) client() (*client.Client, error) {
	base := a.g.registry
	if base == "" {
		base = a.registryFromFile
	}
	c, err := client.New(base,
		client.WithAPIKey(a.g.apiKey),
		client.WithRetry(client.Retry{MaxAttempts: a.g.retries}),
		client.WithUserAgent("srctl/"+version),
	)
	if err != nil {
		return nil, usageError{err.Error()}
	}
	return c, nil
}

func (a *app) printJSON(v any) {
	enc := json.NewEncoder(a.out)
	enc.SetIndent("", "  ")
	_ = enc.Encode(v)
}

func (a *app) printf(format string, args ...any) { fmt.Fprintf(a.out, format, args...) }

// headerFlag collects repeated --header Name=Value.
type headerFlag map[string]string

func (h headerFlag) String() string { return fmt.Sprint(map[string]string(h)) }
func (h headerFlag) Set(s string) error {
	name, value, ok := strings.Cut(s, "=")
	if !ok || name == "" {
		return fmt.Errorf("want Name=Value, got %q", s)
	}
	h[name] = value
	return nil
}

// newLogger logs the registrar's events to stderr (stdout stays for --json).
func (a *app) newLogger() *slog.Logger {
	return slog.New(slog.NewTextHandler(a.errOut, &slog.HandlerOptions{Level: slog.LevelInfo}))
}
