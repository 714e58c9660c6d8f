package main

import (
	"context"
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

	"github.com/kong-service-registry/service-registry/adminsvc/api"
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
	s, pos, err := parseSettings("adminsvc", args, getenv, stdout)
	if errors.Is(err, flag.ErrHelp) {
		return 0
	}
	if err != nil {
		fmt.Fprintf(stderr, "adminsvc: %v\n(adminsvc --help lists every flag)\n", err)
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
	// go-redis logs through its own global logger (pool dial failures):
	// route it through ours so a JSON log stays JSON.
	redis.SetLogger(redisLog{log})
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

// redisLog is go-redis's logger over slog.
type redisLog struct{ log *slog.Logger }

func (r redisLog) Printf(ctx context.Context, format string, v ...any) {
	r.log.WarnContext(ctx, "redis client", "message", fmt.Sprintf(format, v...))
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
		if err != nil && !errors.Is(err, migrations.ErrNewerKeyspace) {
			// Redis unreachable: what this binary knows is still known.
			fmt.Fprintf(stdout, "keyspace version: unknown (redis unreachable)\nlatest known: %d\n", migrations.Latest())
			log.Error("migrate status", "error", err)
			return 1
		}
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

// runImport loads a GET /routes dump into the registry (api.Import).
func runImport(ctx context.Context, s *Settings, file string, stdout io.Writer, log *slog.Logger) int {
	raw, err := os.ReadFile(file)
	if err != nil {
		log.Error("import", "error", err)
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
	rep, err := api.Import(ctx, registry.NewStore(rdb, registry.Options{Prefix: s.RedisPrefix}), raw, log)
	if err != nil {
		log.Error("import", "file", file, "error", err)
		if rep.Rows > 0 {
			fmt.Fprintf(stdout, "imported %d of %d routes before an error: %d created, %d already present\n",
				rep.Created+rep.Same, rep.Rows, rep.Created, rep.Same)
		}
		return 1
	}
	fmt.Fprintln(stdout, rep)
	if rep.Conflicts+rep.Invalid > 0 {
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

	m := api.NewMetrics()
	rec, syncer, err := newReconciler(s, store, rdb, ropt, m, log)
	if err != nil {
		return err
	}
	srv, err := newAPI(s, store, rdb, kongSync{rec, syncer}, m, keys, log)
	if err != nil {
		return err
	}
	defer srv.Close()

	ln, err := net.Listen("tcp", s.Listen)
	if err != nil {
		return fmt.Errorf("listening on %s: %w", s.Listen, err)
	}
	log.Info("adminsvc listening", "addr", ln.Addr().String(), "version", version, "kong_admin_url", redactURL(s.KongAdminURL),
		"kong_mode", s.KongMode, "redis", redactURL(s.RedisURL), "api_keys", len(keys), "rate_limit_per_min", s.RateLimit)

	if s.MetricsListen != "" {
		msrv, err := serveMetrics(s.MetricsListen, m, log)
		if err != nil {
			_ = ln.Close()
			return err
		}
		defer msrv.Close()
	}
	bg.Add(2)
	go func() {
		defer bg.Done()
		_ = rec.Run(ctx)
	}()
	go func() {
		defer bg.Done()
		store.RunExpiry(ctx, time.Second, func() bool { return rec.Stats().Leader }, log)
	}()
	return serveUntilDone(ctx, s, srv, ln, log, ready)
}

// newAPI builds the registry API from the settings and what serve wired.
func newAPI(s *Settings, store *registry.Store, rdb redis.UniversalClient, ks kongSync, m *api.Metrics,
	keys []string, log *slog.Logger) (*api.Server, error) {
	deny, err := api.ParseDenyList(s.DenyBackends, s.KongAdminURL)
	if err != nil {
		return nil, err
	}
	return api.New(api.Config{
		Store: store, Redis: rdb, Sync: ks, Metrics: m, Logger: log, Prefix: s.RedisPrefix,
		APIKeys: keys, RateLimit: s.RateLimit, BodyLimit: s.BodyLimit, MaxEventStreams: s.MaxEventStreams,
		TrustedProxies: s.TrustedProxies, ReadTimeout: s.ReadTimeout, WriteTimeout: s.WriteTimeout, MaxListings: s.MaxListings,
		Deny: deny, KongGrace: s.KongHealthGrace,
	})
}

// serveMetrics starts the key-less metrics-only listener on addr.
func serveMetrics(addr string, m *api.Metrics, log *slog.Logger) (*http.Server, error) {
	mln, err := net.Listen("tcp", addr)
	if err != nil {
		return nil, fmt.Errorf("listening on %s (metrics): %w", addr, err)
	}
	msrv := m.Server()
	go func() { _ = msrv.Serve(mln) }()
	log.Info("metrics listening", "addr", mln.Addr().String())
	return msrv, nil
}

// serveUntilDone serves the API on ln until it fails or ctx ends, then
// shuts it down gracefully within the shutdown timeout.
func serveUntilDone(ctx context.Context, s *Settings, srv *api.Server, ln net.Listener, log *slog.Logger, ready chan<- string) error {
	serveErr := make(chan error, 1)
	go func() { serveErr <- srv.Serve(ln) }()
	if ready != nil {
		ready <- ln.Addr().String()
	}
	select {
	case err := <-serveErr:
		return err
	case <-ctx.Done():
	}
	log.Info("adminsvc shutting down", "timeout", s.ShutdownTimeout.String())
	sctx, scancel := context.WithTimeout(context.Background(), s.ShutdownTimeout)
	defer scancel()
	if err := srv.Shutdown(sctx); err != nil {
		log.Warn("graceful shutdown incomplete", "error", err)
	}
	return nil
}

// kongSync is what the API reads of the Kong sync: the reconciler's
// nudge and counters, and its syncer's apply status.
type kongSync struct {
	*kongsync.Reconciler
	syncer *kongsync.Syncer
}

func (k kongSync) Status() kongsync.Status { return k.syncer.Status() }

// newReconciler wires the Kong sync: its Kong client, the registry it
// reads and the metrics it feeds.
func newReconciler(s *Settings, store *registry.Store, rdb redis.UniversalClient, ropt *redis.Options,
	m *api.Metrics, log *slog.Logger) (*kongsync.Reconciler, *kongsync.Syncer, error) {
	var base []byte
	if s.KongBaseConfig != "" {
		var err error
		if base, err = os.ReadFile(s.KongBaseConfig); err != nil {
			return nil, nil, fmt.Errorf("kong base config: %w", err)
		}
	}
	var headers http.Header
	if s.KongAdminToken != "" {
		headers = http.Header{"Kong-Admin-Token": {s.KongAdminToken}}
	}
	fast, err := s.fastPathOn()
	if err != nil {
		return nil, nil, err
	}
	scope, err := s.pluginScope()
	if err != nil {
		return nil, nil, err
	}
	syncer, err := kongsync.NewSyncer(kongsync.Options{
		AdminURL: s.KongAdminURL, Mode: s.KongMode, Headers: headers, Timeout: s.KongTimeout,
		Concurrency: s.KongConcurrency, BaseConfig: base, Logger: log, ObserveLatency: m.ObserveKong,
	})
	if err != nil {
		return nil, nil, err
	}
	rec, err := kongsync.NewReconciler(kongsync.ReconcilerOptions{
		Source: store, Syncer: syncer, Redis: rdb, Prefix: s.RedisPrefix, Interval: s.Reconcile,
		Debounce: s.SyncDebounce, MaxDelay: s.SyncMaxDelay, LeaseTTL: s.LeaseTTL,
		Translate: translator.Options{Redis: pluginRedis(s, ropt), FastPath: fast, PluginScope: scope}, ReplicaID: s.ReplicaID, Logger: log,
		OnApply: m.ObserveApply,
	})
	return rec, syncer, err
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
