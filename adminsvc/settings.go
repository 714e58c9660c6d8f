package main

import (
	"bufio"
	"errors"
	"flag"
	"fmt"
	"io"
	"net/url"
	"os"
	"sort"
	"strconv"
	"strings"
	"time"

	"github.com/kong-service-registry/service-registry/adminsvc/api"
	"github.com/kong-service-registry/service-registry/internal/translator"
)

// Settings are every knob of adminsvc.
type Settings struct {
	Listen          string
	MetricsListen   string // a separate /metrics listener without API key; "" = none
	RedisURL        string
	RedisSentinel   string // master name; enables Sentinel
	RedisSentinels  string // comma-separated host:port
	RedisCluster    string // comma-separated host:port; enables Cluster
	RedisPrefix     string
	KongAdminURL    string
	KongAdminToken  string
	KongMode        string
	KongBaseConfig  string
	KongTimeout     time.Duration
	KongConcurrency int
	Reconcile       time.Duration
	SyncDebounce    time.Duration
	SyncMaxDelay    time.Duration
	LeaseTTL        time.Duration
	APIKeys         string
	APIKeysFile     string
	RateLimit       int
	BodyLimit       int64
	NoMigrate       bool
	ShutdownTimeout time.Duration
	MaxEventStreams int
	TrustedProxies  string        // CIDRs whose X-Forwarded-For is believed
	ReadTimeout     time.Duration // whole request (headers and body)
	WriteTimeout    time.Duration // whole response, event streams aside
	MaxListings     int
	DenyBackends    string // CIDRs, IPs and host:port refused as backends
	KongHealthGrace time.Duration
	FastPath        string // on or off: the fast path's catch-all route in Kong
	PluginScope     string // auto, service or global: where the service-registry plugin goes
	LogLevel        string
	LogFormat       string
	ReplicaID       string

	// How the Kong plugin reaches Redis, when not the same as adminsvc.
	PluginRedisHost        string
	PluginRedisPort        int
	PluginRedisPassword    string
	PluginRedisDatabase    int
	PluginRedisSSL         bool
	PluginRedisSSLVerify   bool
	PluginRedisServerName  string
	PluginRedisTimeoutMS   int
	PluginRedisSentinel    string
	PluginRedisSentinels   string
	PluginRedisClusterNode string
}

// settingsFlags registers every setting on fs with its SR_* variable as
// the default when set; flags parsed afterwards win.
func settingsFlags(fs *flag.FlagSet, s *Settings, getenv func(string) string) (apply func() error) {
	f := newEnvFlags(fs, getenv)
	var bodyLimit int
	apiFlags(f, s, &bodyLimit)
	redisFlags(f, s)
	kongFlags(f, s)
	pluginRedisFlags(f, s)
	return func() error {
		errs := f.apply()
		s.BodyLimit = int64(bodyLimit)
		errs = append(errs, s.check()...)
		return errors.Join(errs...)
	}
}

// apiFlags are the registry API's own settings.
func apiFlags(f *envFlags, s *Settings, bodyLimit *int) {
	f.str(&s.Listen, "listen", "SR_LISTEN", ":81", "address of the registry API")
	f.str(&s.MetricsListen, "metrics-listen", "SR_METRICS_LISTEN", "", "address of a separate Prometheus /metrics listener that needs no API key, e.g. :9102 (empty: /metrics on --listen only, behind the key)")
	f.secret(&s.APIKeys, "api-keys", "SR_API_KEYS", "", "comma-separated API keys; none = open API (a warning is logged)")
	f.str(&s.APIKeysFile, "api-keys-file", "SR_API_KEYS_FILE", "", "file with one API key per line (# comments)")
	f.integer(&s.RateLimit, "rate-limit", "SR_RATE_LIMIT", 600, "requests per minute per client (API key or IP) on the registry API; 0 = off")
	f.integer(bodyLimit, "body-limit", "SR_BODY_LIMIT", 1<<20, "largest request body in bytes (413 above)")
	f.boolean(&s.NoMigrate, "no-migrate", "SR_NO_MIGRATE", false, "do not run keyspace migrations at start")
	f.dur(&s.ShutdownTimeout, "shutdown-timeout", "SR_SHUTDOWN_TIMEOUT", 15*time.Second, "graceful shutdown limit")
	f.integer(&s.MaxEventStreams, "max-event-streams", "SR_MAX_EVENT_STREAMS", 100, "most concurrent /v1/events streams (503 past it); all share one Redis subscription")
	f.str(&s.TrustedProxies, "trusted-proxies", "SR_TRUSTED_PROXIES", "", "comma-separated CIDRs of proxies in front of adminsvc whose X-Forwarded-For is trusted for the client IP (rate limit, audit); default: none, the peer address is the client")
	f.dur(&s.ReadTimeout, "read-timeout", "SR_READ_TIMEOUT", 30*time.Second, "time allowed to receive a whole request, body included")
	f.dur(&s.WriteTimeout, "write-timeout", "SR_WRITE_TIMEOUT", 30*time.Second, "time allowed to send a whole response (not /v1/events); a client that stops reading is cut then")
	f.str(&s.DenyBackends, "deny-backends", "SR_DENY_BACKENDS", api.DefaultDenyBackends, "backends and instance addresses refused: comma-separated CIDRs, IPs and host:port; the Kong Admin address is always refused; loopback is allowed unless listed")
	f.integer(&s.MaxListings, "max-listings", "SR_MAX_LISTINGS", 16, "full listings (GET /routes, /v1/services without ?limit=) written at once; past it a request waits 2 s, then 503")
	f.str(&s.LogLevel, "log-level", "SR_LOG_LEVEL", "info", "debug, info, warn or error")
	f.str(&s.LogFormat, "log-format", "SR_LOG_FORMAT", "json", "json or text")
	f.str(&s.ReplicaID, "replica-id", "SR_REPLICA_ID", "", "name of this replica in the Kong sync lease (default hostname-pid)")
}

// redisFlags say where the registry's Redis is.
func redisFlags(f *envFlags, s *Settings) {
	f.secret(&s.RedisURL, "redis-url", "SR_REDIS_URL", "redis://127.0.0.1:6379/0", "registry Redis (redis:// or rediss:// for TLS)")
	f.str(&s.RedisSentinel, "redis-sentinel-master", "SR_REDIS_SENTINEL_MASTER", "", "Sentinel master name (enables Sentinel; password and db from --redis-url)")
	f.str(&s.RedisSentinels, "redis-sentinel-addrs", "SR_REDIS_SENTINEL_ADDRS", "", "Sentinel addresses, comma-separated host:port")
	f.str(&s.RedisCluster, "redis-cluster-addrs", "SR_REDIS_CLUSTER_ADDRS", "", "Redis Cluster seed addresses, comma-separated host:port (enables Cluster)")
	f.str(&s.RedisPrefix, "redis-prefix", "SR_REDIS_PREFIX", "sr", "prefix of every registry key")
}

// kongFlags say how to reach Kong's Admin API and how often to sync.
func kongFlags(f *envFlags, s *Settings) {
	f.str(&s.KongAdminURL, "kong-admin-url", "SR_KONG_ADMIN_URL", "http://127.0.0.1:8001", "Kong Admin API")
	// The URL may carry credentials: --help shows it redacted.
	if fl := f.fs.Lookup("kong-admin-url"); fl != nil {
		fl.DefValue = redactURL(fl.DefValue)
	}
	f.secret(&s.KongAdminToken, "kong-admin-token", "SR_KONG_ADMIN_TOKEN", "", "sent as Kong-Admin-Token when set")
	f.str(&s.KongMode, "kong-mode", "SR_KONG_MODE", "auto", "auto (ask Kong's /), db or dbless")
	f.str(&s.KongBaseConfig, "kong-base-config", "SR_KONG_BASE_CONFIG", "", "operator's kong.yml merged into DB-less pushes")
	f.dur(&s.KongTimeout, "kong-timeout", "SR_KONG_TIMEOUT", 10*time.Second, "timeout of each Kong Admin API call")
	f.integer(&s.KongConcurrency, "kong-concurrency", "SR_KONG_CONCURRENCY", 8, "parallel Kong writes in DB mode")
	f.dur(&s.Reconcile, "reconcile-interval", "SR_RECONCILE_INTERVAL", 30*time.Second, "full reconcile with Kong (reads Kong, heals drift) at least this often")
	f.dur(&s.SyncDebounce, "kong-sync-debounce", "SR_KONG_SYNC_DEBOUNCE", 200*time.Millisecond, "apply registry changes to Kong this long after the last one of a burst")
	f.dur(&s.SyncMaxDelay, "kong-sync-max-delay", "SR_KONG_SYNC_MAX_DELAY", 2*time.Second, "but never later than this after the first change")
	f.dur(&s.KongHealthGrace, "kong-health-grace", "SR_KONG_HEALTH_GRACE", time.Minute, "how long Kong may be unreachable or refuse writes before /health says degraded")
	f.dur(&s.LeaseTTL, "kong-lease-ttl", "SR_KONG_LEASE_TTL", 15*time.Second, "how long the Kong sync lease outlives a silent replica")
	f.str(&s.FastPath, "fast-path", "SR_FAST_PATH", "on", "on: keep the fast path's catch-all route sr-fast-path (paths [\"/\"], no hosts) in Kong, so a new registration answers before Kong's router has its own route; off: remove it")
	f.str(&s.PluginScope, "plugin-scope", "SR_PLUGIN_SCOPE", translator.PluginScopeService, "where the service-registry plugin goes: service (one per registered route's Kong service), global (one global plugin serving every registered route; each plugin write in Kong DB mode makes every Kong worker rebuild over all plugins), auto (global in Kong DB mode, service in DB-less mode)")
}

// pluginRedisFlags say how the Kong plugin reaches Redis, when not the same
// way as adminsvc.
func pluginRedisFlags(f *envFlags, s *Settings) {
	f.str(&s.PluginRedisHost, "plugin-redis-host", "SR_PLUGIN_REDIS_HOST", "", "Redis host the Kong plugin uses (default: host of --redis-url)")
	f.integer(&s.PluginRedisPort, "plugin-redis-port", "SR_PLUGIN_REDIS_PORT", 0, "Redis port the Kong plugin uses (default: port of --redis-url)")
	f.secret(&s.PluginRedisPassword, "plugin-redis-password", "SR_PLUGIN_REDIS_PASSWORD", "", "Redis password the Kong plugin uses (default: from --redis-url)")
	f.integer(&s.PluginRedisDatabase, "plugin-redis-database", "SR_PLUGIN_REDIS_DATABASE", -1, "Redis database the Kong plugin uses (default: from --redis-url)")
	f.boolean(&s.PluginRedisSSL, "plugin-redis-ssl", "SR_PLUGIN_REDIS_SSL", false, "the Kong plugin uses TLS to Redis (default: true for rediss://)")
	f.boolean(&s.PluginRedisSSLVerify, "plugin-redis-ssl-verify", "SR_PLUGIN_REDIS_SSL_VERIFY", true, "the Kong plugin verifies the Redis server certificate when it uses TLS")
	f.str(&s.PluginRedisServerName, "plugin-redis-server-name", "SR_PLUGIN_REDIS_SERVER_NAME", "", "TLS server name for the plugin's Redis")
	f.integer(&s.PluginRedisTimeoutMS, "plugin-redis-timeout-ms", "SR_PLUGIN_REDIS_TIMEOUT_MS", 0, "the plugin's Redis timeout (default: plugin's own, 20)")
	f.str(&s.PluginRedisSentinel, "plugin-redis-sentinel-master", "SR_PLUGIN_REDIS_SENTINEL_MASTER", "", "Sentinel master for the plugin (default: --redis-sentinel-master)")
	f.str(&s.PluginRedisSentinels, "plugin-redis-sentinel-nodes", "SR_PLUGIN_REDIS_SENTINEL_NODES", "", "Sentinel nodes for the plugin (default: --redis-sentinel-addrs)")
	f.str(&s.PluginRedisClusterNode, "plugin-redis-cluster-nodes", "SR_PLUGIN_REDIS_CLUSTER_NODES", "", "Cluster nodes for the plugin (default: --redis-cluster-addrs)")
}

// check refuses settings no flag parser catches: enums, ranges and the
// addresses the API parses.
func (s *Settings) check() []error {
	var errs []error
	switch s.KongMode {
	case "auto", "db", "dbless":
	default:
		errs = append(errs, fmt.Errorf("kong-mode %q: expected auto, db or dbless", s.KongMode))
	}
	if s.Reconcile <= 0 || s.SyncDebounce <= 0 || s.SyncMaxDelay <= 0 || s.LeaseTTL <= 0 {
		errs = append(errs, errors.New("reconcile-interval, kong-sync-debounce, kong-sync-max-delay and kong-lease-ttl must be positive"))
	}
	if s.MaxEventStreams <= 0 {
		errs = append(errs, errors.New("max-event-streams must be positive"))
	}
	if s.ReadTimeout <= 0 || s.WriteTimeout <= 0 {
		errs = append(errs, errors.New("read-timeout and write-timeout must be positive"))
	}
	if _, err := s.fastPathOn(); err != nil {
		errs = append(errs, err)
	}
	if _, err := s.pluginScope(); err != nil {
		errs = append(errs, err)
	}
	if s.KongHealthGrace <= 0 {
		errs = append(errs, errors.New("kong-health-grace must be positive"))
	}
	if s.MaxListings <= 0 {
		errs = append(errs, errors.New("max-listings must be positive"))
	}
	if _, err := api.IPExtractor(s.TrustedProxies); err != nil {
		errs = append(errs, err)
	}
	if s.RateLimit < 0 {
		errs = append(errs, errors.New("rate-limit must not be negative"))
	}
	if s.BodyLimit <= 0 {
		errs = append(errs, errors.New("body-limit must be positive"))
	}
	if _, err := url.Parse(s.KongAdminURL); err != nil {
		errs = append(errs, fmt.Errorf("kong-admin-url: %w", err))
	} else if _, err := api.ParseDenyList(s.DenyBackends, s.KongAdminURL); err != nil {
		errs = append(errs, err)
	}
	return errs
}

// fastPathOn reads the fast-path setting: on or off (a boolean is taken too).
func (s *Settings) fastPathOn() (bool, error) {
	switch strings.ToLower(s.FastPath) {
	case "on":
		return true, nil
	case "off":
		return false, nil
	}
	if b, err := strconv.ParseBool(s.FastPath); err == nil {
		return b, nil
	}
	return false, fmt.Errorf("fast-path %q: expected on or off", s.FastPath)
}

// pluginScope reads the plugin-scope setting (any case): auto, service or
// global, as translator.Options.PluginScope takes it (kongsync resolves
// auto by the Kong mode).
func (s *Settings) pluginScope() (string, error) {
	switch v := strings.ToLower(s.PluginScope); v {
	case translator.PluginScopeAuto, translator.PluginScopeService, translator.PluginScopeGlobal:
		return v, nil
	}
	return "", fmt.Errorf("plugin-scope %q: expected auto, service or global", s.PluginScope)
}

// parseSettings reads env then flags (flags win). Flags may come before,
// between or after the command words, which are returned in order in
// positional ("migrate", "status").
func parseSettings(name string, args []string, getenv func(string) string, out io.Writer) (*Settings, []string, error) {
	s := &Settings{}
	fs := flag.NewFlagSet(name, flag.ContinueOnError)
	// flag's own messages are dropped: a parse error is returned (run
	// prints it to stderr) and asked-for help goes to out (stdout), so
	// `adminsvc --help | less` works.
	fs.SetOutput(io.Discard)
	apply := settingsFlags(fs, s, getenv)
	fs.Usage = func() {}
	var positional []string
	for {
		if err := fs.Parse(args); err != nil {
			if errors.Is(err, flag.ErrHelp) {
				fmt.Fprintf(out, "Usage:\n  %s [flags]                 serve the registry API\n  %s migrate up|status [flags]\n  %s import [flags] routes.json\n\nFlags (every flag also reads the SR_* variable shown; flags win):\n", name, name, name)
				fs.SetOutput(out)
				fs.PrintDefaults()
			}
			return nil, nil, err
		}
		if fs.NArg() == 0 {
			break
		}
		// flag stops at the first non-flag: keep it and parse the rest,
		// unless "--" ended the flags.
		rest := fs.Args()
		if len(args) > len(rest) && args[len(args)-len(rest)-1] == "--" {
			positional = append(positional, rest...)
			break
		}
		positional = append(positional, rest[0])
		args = rest[1:]
	}
	if err := apply(); err != nil {
		return nil, positional, err
	}
	return s, positional, nil
}

// loadAPIKeys merges SR_API_KEYS and the keys file.
func (s *Settings) loadAPIKeys() ([]string, error) {
	var keys []string
	for _, k := range strings.Split(s.APIKeys, ",") {
		if k = strings.TrimSpace(k); k != "" {
			keys = append(keys, k)
		}
	}
	if s.APIKeysFile != "" {
		f, err := os.Open(s.APIKeysFile)
		if err != nil {
			return nil, fmt.Errorf("api keys file: %w", err)
		}
		defer f.Close()
		sc := bufio.NewScanner(f)
		for sc.Scan() {
			line := strings.TrimSpace(sc.Text())
			if line == "" || strings.HasPrefix(line, "#") {
				continue
			}
			keys = append(keys, line)
		}
		if err := sc.Err(); err != nil {
			return nil, fmt.Errorf("api keys file: %w", err)
		}
	}
	sort.Strings(keys)
	return keys, nil
}
