package main

import (
	"net"
	"runtime"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/kong-service-registry/service-registry/internal/discovery"
	"github.com/kong-service-registry/service-registry/internal/ratelimit"
	"github.com/kong-service-registry/service-registry/internal/redisconn"
	"github.com/kong-service-registry/service-registry/internal/registry"
	"github.com/kong-service-registry/service-registry/internal/routetable"
)

// backend is everything kept per distinct Redis setting set: the client,
// the store over it and the discovery cache (one change-feed subscription).
// It lives for the whole process: plugin instances come and go with config
// versions, the cache must not.
type backend struct {
	// rdb has the configured short timeouts: for work on the request path
	// (rate limiting, breaker sync).
	rdb redis.UniversalClient
	// loadRdb serves the discovery cache's background loads and change
	// feed; a snapshot of many instances may need more than timeout_ms, and
	// no request waits for it (see loadTimeout).
	loadRdb redis.UniversalClient
	store   *registry.Store
	cache   *discovery.Cache
	timeout time.Duration
	// loadTimeout bounds background reads (loadTimeout(rc)).
	loadTimeout time.Duration
	addr        string // for logs; never the password
	endpoint    string // for metric labels: redisEndpoint, never the password
	prefix      string // redis.key_prefix

	// Guards over rdb (rateguard.go, breakers.go): one limiter per failure policy, one
	// breaker set per (scope, settings). They live as long as the client.
	guardMu  sync.Mutex
	limiters map[ratelimit.Policy]*ratelimit.Limiter
	breakers map[string]*breakerSet
	// routes is the fast path's route table (fastpath.go), made by the
	// first fast_path request on this backend; nil until then. Read
	// without the lock on every fast-path request.
	routes atomic.Pointer[routetable.Table]
}

// routeTable returns the backend's route table, made on first use with
// poll as its generation backstop interval (the first config's
// cache_ttl_ms: the same bound on staleness as the snapshots).
func (b *backend) routeTable(poll time.Duration) *routetable.Table {
	if t := b.routes.Load(); t != nil {
		return t
	}
	b.guardMu.Lock()
	defer b.guardMu.Unlock()
	if t := b.routes.Load(); t != nil {
		return t
	}
	t := routetable.New(b.store, routetable.Options{Logger: logger(), Timeout: 2 * b.loadTimeout, PollInterval: poll})
	b.routes.Store(t)
	return t
}

// stop closes what the backend runs: breaker syncs, limiters' background
// work, feed, clients.
func (b *backend) stop() {
	b.stopBreakers()
	b.stopLimiters()
	b.cache.Close()
	b.guardMu.Lock()
	routes := b.routes.Load()
	b.guardMu.Unlock()
	if routes != nil {
		routes.Close()
	}
	_ = b.rdb.Close()
	_ = b.loadRdb.Close()
}

// loadTimeout is the Redis timeout of discovery's background reads.
func loadTimeout(rc RedisConfig) time.Duration {
	return max(time.Duration(rc.TimeoutMs)*time.Millisecond, time.Second)
}

type backendRegistry struct {
	mu sync.Mutex
	m  map[string]*backend
	// refs counts the live Configs using each backend. go-pdk has no close
	// hook for an instance, so a Config's release is noticed when it is
	// garbage collected (runtime.AddCleanup), after Kong closed it.
	refs map[string]int
	// idle is how long an unused backend is kept before it is closed, so a
	// config change that keeps the Redis settings never drops the cache.
	idle time.Duration
}

// acquire returns the backend for rc and counts owner as a user of it until
// owner is garbage collected.
func (r *backendRegistry) acquire(owner *Config, rc RedisConfig) *backend {
	b, key := r.getRef(rc)
	runtime.AddCleanup(owner, r.release, key)
	return b
}

// release drops one user; the last one schedules the close.
func (r *backendRegistry) release(key string) {
	r.mu.Lock()
	r.refs[key]--
	last, idle := r.refs[key] <= 0, r.idle
	r.mu.Unlock()
	if last {
		time.AfterFunc(idle, func() { r.closeIfUnused(key) })
	}
}

func (r *backendRegistry) closeIfUnused(key string) {
	r.mu.Lock()
	b := r.m[key]
	if b == nil || r.refs[key] > 0 {
		r.mu.Unlock()
		return
	}
	delete(r.m, key)
	delete(r.refs, key)
	r.mu.Unlock()
	b.stop()
	logger().Info("service-registry: closed unused redis backend", "addr", b.addr)
}

// open reports whether the backend for rc is open (tests).
func (r *backendRegistry) open(rc RedisConfig) bool {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.m[redisKey(rc)] != nil
}

// getRef returns the backend for rc, opened if needed, with one reference
// taken. The reference is taken under the same lock as the lookup: taken
// after it, closeIfUnused could close the backend in between and the
// caller would keep a closed cache and closed clients.
func (r *backendRegistry) getRef(rc RedisConfig) (*backend, string) {
	key := redisKey(rc)
	r.mu.Lock()
	defer r.mu.Unlock()
	r.refs[key]++
	if b := r.m[key]; b != nil {
		return b, key
	}
	timeout := time.Duration(rc.TimeoutMs) * time.Millisecond
	endpoint := redisEndpoint(rc)
	loadRdb := newRedisClient(rc, loadTimeout(rc))
	loadRdb.AddHook(newRedisHook(endpoint, "background"))
	rdb := newRedisClient(rc, timeout)
	rdb.AddHook(newRedisHook(endpoint, "request"))
	store := registry.NewStore(loadRdb, registry.Options{Prefix: rc.KeyPrefix})
	b := &backend{
		rdb:     rdb,
		loadRdb: loadRdb,
		store:   store,
		cache:   discovery.New(store, discovery.Options{Logger: logger(), Timeout: 2 * loadTimeout(rc)}),
		timeout: timeout,
		addr:    redisMode(rc) + " " + redisEndpoint(rc),

		loadTimeout: loadTimeout(rc),
		prefix:      rc.KeyPrefix,

		endpoint: endpoint,
	}
	r.m[key] = b
	logger().Info("service-registry: new redis backend", "mode", redisMode(rc), "addr", redisEndpoint(rc), "prefix", rc.KeyPrefix)
	return b, key
}

// closeAll stops every backend (tests; the process otherwise ends with Kong).
func (r *backendRegistry) closeAll() {
	r.mu.Lock()
	defer r.mu.Unlock()
	for k, b := range r.m {
		b.stop()
		delete(r.m, k)
		delete(r.refs, k)
	}
}

func redisMode(rc RedisConfig) string { return string(redisConfig(rc, 0).Mode()) }

// redisEndpoint names what a backend talks to, for logs: in Sentinel mode
// the master name and sentinels (host/port are unused there, so logging
// them pointed operators at a Redis the plugin never dials).
func redisEndpoint(rc RedisConfig) string {
	if redisMode(rc) != "sentinel" {
		return redisAddr(rc)
	}
	addrs := make([]string, len(rc.SentinelNodes))
	for i, n := range rc.SentinelNodes {
		addrs[i] = net.JoinHostPort(n.Host, strconv.Itoa(n.Port))
	}
	return rc.SentinelMaster + "@" + strings.Join(addrs, ",")
}

func redisAddr(rc RedisConfig) string {
	return net.JoinHostPort(rc.Host, strconv.Itoa(rc.Port))
}

// newRedisClient builds a client for one setting set with the given
// connect/read/write timeout; go-redis retries are off so a dead Redis costs
// one timeout, not several, and the discovery cache serves its last snapshot.
// ContextTimeoutEnabled lets a caller's deadline bound a call on its own
// goroutine (the rate limiter relies on it; without it, it would spawn a
// goroutine per decision).
func newRedisClient(rc RedisConfig, timeout time.Duration) redis.UniversalClient {
	rdb, err := redisconn.New(redisConfig(rc, timeout))
	if err != nil {
		// Unreachable: the config check refuses these settings before a
		// backend is built. A client whose every call fails keeps this
		// path total instead of panicking inside Kong's request.
		return redis.NewClient(&redis.Options{Addr: "invalid-redis-settings:0", MaxRetries: -1})
	}
	return rdb
}

// redisConfig maps the plugin's redis record onto the shared client rules.
func redisConfig(rc RedisConfig, timeout time.Duration) redisconn.Config {
	c := redisconn.Config{
		Addr: redisAddr(rc), MasterName: rc.SentinelMaster, Username: rc.Username, Password: rc.Password, DB: rc.Database,
		TLS: rc.SSL, ServerName: rc.ServerName, SkipVerify: !rc.SSLVerify,
		Timeout: timeout, MaxRetries: -1, ContextTimeout: true,
	}
	for _, n := range rc.ClusterNodes {
		c.ClusterAddrs = append(c.ClusterAddrs, net.JoinHostPort(n.IP, strconv.Itoa(n.Port)))
	}
	for _, n := range rc.SentinelNodes {
		c.SentinelAddrs = append(c.SentinelAddrs, net.JoinHostPort(n.Host, strconv.Itoa(n.Port)))
	}
	return c
}
