package main

import (
	"encoding/json"
	"errors"
	"fmt"
	"reflect"
	"sort"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"

	"github.com/kong-service-registry/service-registry/internal/routetable"
)

// Config is the plugin's configuration (CONTRACT §3). Field types are only
// those go-pdk's schema reflection keeps; json tags are the contract's names
// (never omitempty: go-pdk takes the tag literally). Defaults and validators
// live in the `sr` tags (see fields.go).
//
// Kong makes one Config per plugin entity and config version; everything
// long-lived is in process-wide registries (backends.go), never here.
type Config struct {
	Registry       string               `json:"registry" sr:"default=kong;one_of=kong,redis" desc:"Where the target comes from: kong (Kong's own upstream) or redis (the service registry)."`
	Service        string               `json:"service" desc:"Registry service this route resolves to; default: the Kong service name."`
	PreserveHost   bool                 `json:"preserve_host" sr:"default=false" desc:"With registry redis: send the client's Host to the instance, as the route's preserve_host does (set_target otherwise makes the instance host the Host). Set it to the route's preserve_host; adminsvc does."`
	Redis          RedisConfig          `json:"redis" desc:"Redis holding the registry (standalone, Sentinel or Cluster)."`
	CacheTTLMs     int                  `json:"cache_ttl_ms" sr:"default=1000;between=1,86400000" desc:"Upper bound in ms on staleness of the local registry cache when the change feed is lost."`
	RateLimit      RateLimitConfig      `json:"rate_limit" desc:"Rate limiting (GCRA in Redis, one round trip per request)."`
	CircuitBreaker CircuitBreakerConfig `json:"circuit_breaker" desc:"Circuit breaking per backend instance."`
	FastPath       bool                 `json:"fast_path" sr:"default=false" desc:"Route by the registry: serve every registered route (host, longest path prefix) with its own options until Kong's router has its dedicated route; unknown routes get Kong's 404. Requires registry redis; service is ignored. For the catch-all route adminsvc creates."`
	RegistryRoutes bool                 `json:"registry_routes" sr:"default=false" desc:"For a global instance: serve the Kong services adminsvc made for registered routes with each route's own options from the registry (rate limit, circuit breaker, preserve_host), as a plugin on each service would; requests to other Kong services pass untouched. Requires registry redis; service is ignored. adminsvc writes it in plugin scope global."`

	// Kong's own keys, read by UnmarshalJSON; not part of the schema.
	pluginID  string
	serviceID string
	routeID   string
	seq       int

	once     sync.Once
	compiled *compiled
	resolved atomic.Pointer[string]       // Kong service name, once resolved
	stats    atomic.Pointer[serviceStats] // the last service label counted (metrics.go)
}

// RedisConfig mirrors Kong's own Redis settings, plus Sentinel, Cluster and
// the registry key prefix.
type RedisConfig struct {
	Host           string         `json:"host" sr:"default=127.0.0.1" desc:"Redis host (standalone)."`
	Port           int            `json:"port" sr:"default=6379;between=1,65535" desc:"Redis port (standalone)."`
	Username       string         `json:"username" desc:"Redis ACL username (Redis 6+)."`
	Password       string         `json:"password" sr:"secret" desc:"Redis password; never logged."`
	Database       int            `json:"database" sr:"default=0;between=0,2147483647" desc:"Redis database number (standalone and Sentinel)."`
	SSL            bool           `json:"ssl" sr:"default=false" desc:"Connect to Redis over TLS."`
	SSLVerify      bool           `json:"ssl_verify" sr:"default=false" desc:"Verify the Redis server certificate."`
	ServerName     string         `json:"server_name" desc:"SNI and certificate name for TLS; default: the host."`
	TimeoutMs      int            `json:"timeout_ms" sr:"default=20;between=1,2147483647" desc:"Connect, read and write timeout in ms for each Redis operation."`
	SentinelMaster string         `json:"sentinel_master" desc:"Sentinel master name; enables Sentinel mode with sentinel_nodes."`
	SentinelNodes  []SentinelNode `json:"sentinel_nodes" desc:"Sentinel nodes (host and port)."`
	ClusterNodes   []ClusterNode  `json:"cluster_nodes" desc:"Redis Cluster seed nodes (ip and port); enables Cluster mode."`
	KeyPrefix      string         `json:"key_prefix" sr:"default=sr" desc:"Prefix of every registry key in Redis."`
}

// SentinelNode is one Sentinel address (Kong Enterprise's shape).
type SentinelNode struct {
	Host string `json:"host" sr:"required" desc:"Sentinel host."`
	Port int    `json:"port" sr:"default=26379;between=1,65535" desc:"Sentinel port."`
}

// ClusterNode is one Redis Cluster seed (Kong Enterprise's shape).
type ClusterNode struct {
	IP   string `json:"ip" sr:"required" desc:"Cluster node address."`
	Port int    `json:"port" sr:"default=6379;between=1,65535" desc:"Cluster node port."`
}

// RateLimitConfig configures the limiter (internal/ratelimit).
type RateLimitConfig struct {
	Enabled           bool   `json:"enabled" sr:"default=false" desc:"Enable rate limiting."`
	RequestsPerMin    int    `json:"requests_per_min" sr:"between=1,60000000" desc:"Requests allowed per minute (at most one per microsecond: the limiter's bound)."`
	RequestsPerSecond int    `json:"requests_per_second" sr:"between=1,1000000" desc:"Requests allowed per second (at most one per microsecond: the limiter's bound)."`
	PerIP             bool   `json:"per_ip" sr:"default=false" desc:"Limit each client IP separately (same as limit_by ip)."`
	LimitBy           string `json:"limit_by" sr:"default=service;one_of=service,route,ip,consumer,header" desc:"What one counter is kept for."`
	HeaderName        string `json:"header_name" desc:"Request header to limit by when limit_by is header."`
	Burst             int    `json:"burst" sr:"default=0;between=0,1000000" desc:"Requests allowed at once ahead of the steady pace."`
	FaultTolerant     bool   `json:"fault_tolerant" sr:"default=true" desc:"Let requests through when Redis is unreachable."`
	HideClientHeaders bool   `json:"hide_client_headers" sr:"default=false" desc:"Do not send the RateLimit-* and X-RateLimit-* headers."`
	ErrorCode         int    `json:"error_code" sr:"default=429;between=100,599" desc:"Status of a rate-limited response."`
	ErrorMessage      string `json:"error_message" sr:"default=API rate limit exceeded" desc:"Message of a rate-limited response."`
}

// CircuitBreakerConfig configures the per-instance breaker (internal/breaker).
type CircuitBreakerConfig struct {
	Enabled          bool    `json:"enabled" sr:"default=false" desc:"Enable circuit breaking per backend instance."`
	FailureThreshold int     `json:"failure_threshold" sr:"default=5;between=1,2147483647" desc:"Consecutive failures that open an instance's breaker."`
	FailureRatio     float64 `json:"failure_ratio" sr:"default=0;between=0,1" desc:"Failure ratio over the window that opens the breaker; 0 disables the ratio rule."`
	MinCalls         int     `json:"min_calls" sr:"default=10;between=1,2147483647" desc:"Calls in the window before failure_ratio applies."`
	WindowMs         int     `json:"window_ms" sr:"default=10000;between=1,2147483647" desc:"Length in ms of the window failures are counted in."`
	TimeoutMs        int     `json:"timeout_ms" sr:"default=30000;between=1,2147483647" desc:"Time in ms an open breaker waits before letting probes through."`
	HalfOpenMaxCalls int     `json:"half_open_max_calls" sr:"default=1;between=1,2147483647" desc:"Probes allowed through a half-open breaker, cluster-wide."`
	FailureStatuses  []int   `json:"failure_statuses" sr:"default=500-599;elem_between=100,599" desc:"Upstream statuses counted as failures (default: every status 500-599)."`
	ErrorCode        int     `json:"error_code" sr:"default=503;between=100,599" desc:"Status answered when every instance is open."`
}

// New is go-pdk's constructor.
func New() interface{} { return &Config{} }

// errConfig is the prefix of every validation error the client sees.
var errConfig = errors.New("service-registry: invalid config")

// UnmarshalJSON never fails on anything Kong's schema accepts (and not on
// much else): problems are kept and reported by the handler as a 500, since
// a decoding error would make Kong retry the instance start forever.
func (c *Config) UnmarshalJSON(b []byte) error {
	var d decoder
	*c = Config{}
	d.decodeStruct(b, reflect.ValueOf(c).Elem(), "")
	c.readKongKeys(b)
	c.compiled = &compiled{decodeErrs: d.errs}
	return nil
}

// readKongKeys reads the keys Kong adds: __plugin_id, __seq__, and
// service_id as an id or as {"id": ...}.
func (c *Config) readKongKeys(b []byte) {
	var m map[string]json.RawMessage
	if json.Unmarshal(b, &m) != nil {
		return
	}
	_ = json.Unmarshal(m["__plugin_id"], &c.pluginID)
	_ = json.Unmarshal(m["__seq__"], &c.seq)
	c.serviceID = kongID(m["service_id"])
	c.routeID = kongID(m["route_id"])
}

// kongID reads a scope key Kong adds, sent as an id or as {"id": ...}.
func kongID(raw json.RawMessage) string {
	if raw == nil {
		return ""
	}
	var id string
	if json.Unmarshal(raw, &id) != nil {
		var obj struct {
			ID string `json:"id"`
		}
		_ = json.Unmarshal(raw, &obj)
		id = obj.ID
	}
	return id
}

// defaults returns a Config with every default applied, as Kong would send
// for `config: {}`.
func defaults() *Config {
	c := &Config{}
	_ = c.UnmarshalJSON([]byte(`{}`))
	return c
}

// validate runs the cross-field checks the schema cannot express and
// returns every problem found, sorted, as "<field>: <why>".
func (c *Config) validate(decodeErrs []string) []string {
	errs := append([]string(nil), decodeErrs...)
	rl, cb, r := c.RateLimit, c.CircuitBreaker, c.Redis
	if rl.Enabled && rl.RequestsPerMin == 0 && rl.RequestsPerSecond == 0 {
		errs = append(errs, "rate_limit: requests_per_min or requests_per_second is required when enabled")
	}
	if rl.LimitBy == "header" && rl.HeaderName == "" {
		errs = append(errs, "rate_limit.header_name: required when limit_by is header")
	}
	if cb.Enabled && len(cb.FailureStatuses) == 0 {
		errs = append(errs, "circuit_breaker.failure_statuses: at least one status is required when enabled")
	}
	if r.SentinelMaster != "" && len(r.SentinelNodes) == 0 {
		errs = append(errs, "redis.sentinel_nodes: required with sentinel_master")
	}
	if len(r.SentinelNodes) > 0 && r.SentinelMaster == "" {
		errs = append(errs, "redis.sentinel_master: required with sentinel_nodes")
	}
	if len(r.ClusterNodes) > 0 && r.SentinelMaster != "" {
		errs = append(errs, "redis: cluster_nodes and sentinel_master are mutually exclusive")
	}
	if c.FastPath && c.Registry != "redis" {
		errs = append(errs, "fast_path: requires registry redis")
	}
	if c.RegistryRoutes && c.Registry != "redis" {
		errs = append(errs, "registry_routes: requires registry redis")
	}
	if c.RegistryRoutes && c.FastPath {
		errs = append(errs, "registry_routes: not with fast_path (the catch-all matches by host and path itself)")
	}
	if strings.ContainsAny(c.Service, "{}") {
		errs = append(errs, "service: must not contain braces")
	}
	sort.Strings(errs)
	return errs
}

// compiled is what a Config turns into once per instance: the validation
// verdict and, for registry=redis, the resolved backend.
type compiled struct {
	decodeErrs []string
	err        error // nil when the config is valid
	message    []byte
	backend    *backend

	// The guards (guards.go); nil: off.
	rate    *rateGuard
	breaker *breakerGuard
	// shareRouter: the rate limit asks kong.router for its identity and
	// the registry pick for the service name; see requestRouter.
	shareRouter bool
	// buildRoute is c.buildRoute bound once (fast_path), so a request
	// does not allocate a method value for it.
	buildRoute func(*routetable.Entry) any
}

// compile validates the config and resolves its backend, once per instance.
func (c *Config) compile() *compiled {
	c.once.Do(func() {
		if c.compiled == nil {
			// Built as a struct literal (tests), not decoded from JSON.
			c.compiled = &compiled{}
		}
		cp := c.compiled
		if errs := c.validate(cp.decodeErrs); len(errs) > 0 {
			cp.err = fmt.Errorf("%w: %s", errConfig, strings.Join(errs, "; "))
			cp.message = messageJSON(cp.err.Error())
			// Every Kong worker starts its own instance of a config
			// version: log it once per (plugin, version) per process.
			key := fmt.Sprintf("%s/%d", c.pluginID, c.seq)
			if _, seen := refusedConfigs.LoadOrStore(key, true); !seen || c.pluginID == "" {
				logger().Error("service-registry: refusing requests with this config",
					"plugin_id", c.pluginID, "seq", c.seq, "error", cp.err.Error())
			}
			return
		}
		if c.FastPath || c.RegistryRoutes {
			cp.buildRoute = c.buildRoute
		}
		// The guards need Redis even with registry = kong. A backend set
		// already is a fast-path route's, shared with its catch-all
		// (buildRoute) and not counted.
		if cp.backend == nil && (c.Registry == "redis" || c.RateLimit.Enabled || c.CircuitBreaker.Enabled) {
			cp.backend = backends.acquire(c, c.Redis)
		}
		if err := c.compileGuards(cp); err != nil {
			cp.err = fmt.Errorf("%w: %w", errConfig, err)
			cp.message = messageJSON(cp.err.Error())
			logger().Error("service-registry: refusing requests with this config",
				"plugin_id", c.pluginID, "seq", c.seq, "error", cp.err.Error())
		}
	})
	return c.compiled
}

// messageJSON encodes Kong's error body shape {"message": "..."}.
func messageJSON(msg string) []byte {
	b, _ := json.Marshal(struct {
		Message string `json:"message"`
	}{msg})
	return b
}

// redisKey identifies a set of Redis settings: one client per distinct set.
// It includes the password (it changes the connection) and is never logged.
func redisKey(r RedisConfig) string {
	var b strings.Builder
	for _, s := range []string{r.Host, strconv.Itoa(r.Port), r.Username, r.Password, strconv.Itoa(r.Database),
		strconv.FormatBool(r.SSL), strconv.FormatBool(r.SSLVerify), r.ServerName, strconv.Itoa(r.TimeoutMs),
		r.SentinelMaster, r.KeyPrefix} {
		b.WriteString(strconv.Quote(s))
	}
	for _, n := range r.SentinelNodes {
		b.WriteString("s" + strconv.Quote(n.Host) + strconv.Itoa(n.Port))
	}
	for _, n := range r.ClusterNodes {
		b.WriteString("c" + strconv.Quote(n.IP) + strconv.Itoa(n.Port))
	}
	return b.String()
}
