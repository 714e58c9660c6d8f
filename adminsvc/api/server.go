package api

import (
	"context"
	"crypto/sha256"
	"errors"
	"log/slog"
	"net"
	"net/http"
	"sync"
	"sync/atomic"
	"time"

	"github.com/go-redis/redis_rate/v10"
	"github.com/labstack/echo/v4"
	"github.com/redis/go-redis/v9"

	"github.com/kong-service-registry/service-registry/adminsvc/ui"
	"github.com/kong-service-registry/service-registry/internal/kongsync"
	"github.com/kong-service-registry/service-registry/internal/registry"
)

// Sync is what the API needs of the Kong sync (a *kongsync.Reconciler):
// a nudge after a change, and its state for /health and /metrics.
type Sync interface {
	Trigger()
	Pending(ctx context.Context) (int64, error)
	Stats() kongsync.Stats
	// Status is how this replica's last applies to Kong went.
	Status() kongsync.Status
}

// Config is everything the API needs. Zero values mean the defaults noted.
type Config struct {
	Store   *registry.Store       // required
	Redis   redis.UniversalClient // required: rate limiter, breaker states
	Sync    Sync                  // required
	Metrics *Metrics              // default: a new one
	Logger  *slog.Logger          // default: slog.Default()
	Prefix  string                // Redis key prefix; default "sr"

	APIKeys         []string      // none: open API
	RateLimit       int           // requests per minute per client; 0: off
	BodyLimit       int64         // largest request body; default 1 MiB
	MaxEventStreams int           // default 100
	TrustedProxies  string        // CIDRs whose X-Forwarded-For is believed
	ReadTimeout     time.Duration // whole request, headers and body; default 30s
	// WriteTimeout bounds writing a response (every endpoint but the
	// /v1/events stream): a client that stops reading is cut then, and
	// what its response held is released. Default 30s.
	WriteTimeout time.Duration
	// Deny refuses backends and instance addresses; nil: none refused.
	// The wiring passes ParseDenyList(SR_DENY_BACKENDS, Kong Admin URL).
	Deny *DenyList
	// KongGrace is how long Kong may fail or refuse writes before /health
	// says "degraded" (a restart of Kong is not an incident). Default 1m.
	KongGrace   time.Duration
	Now         func() time.Time // default time.Now
	MaxListings int              // full listings (GET /routes, /v1/services) written at once; default 16
}

func (c *Config) defaults() error {
	if c.Store == nil || c.Redis == nil || c.Sync == nil {
		return errors.New("api: store, redis and sync are required")
	}
	if c.Metrics == nil {
		c.Metrics = NewMetrics()
	}
	if c.Logger == nil {
		c.Logger = slog.Default()
	}
	if c.Prefix == "" {
		c.Prefix = "sr"
	}
	if c.BodyLimit <= 0 {
		c.BodyLimit = 1 << 20
	}
	if c.MaxEventStreams <= 0 {
		c.MaxEventStreams = 100
	}
	if c.ReadTimeout <= 0 {
		c.ReadTimeout = 30 * time.Second
	}
	if c.WriteTimeout <= 0 {
		c.WriteTimeout = 30 * time.Second
	}
	if c.MaxListings <= 0 {
		c.MaxListings = 16
	}
	if c.KongGrace <= 0 {
		c.KongGrace = time.Minute
	}
	if c.Now == nil {
		c.Now = time.Now
	}
	return nil
}

// Server is the HTTP side of adminsvc.
type Server struct {
	cfg     Config
	log     *slog.Logger
	store   *registry.Store
	rdb     redis.UniversalClient
	sync    Sync
	keys    [][32]byte // sha256 of each API key: compared in constant time
	limiter *redis_rate.Limiter
	m       *Metrics
	e       *echo.Echo
	hub     *hub
	// listings holds one token per full listing being written.
	listings chan struct{}
	// lastRoutes is the route count last read (-1: never), reported by
	// /metrics while the store is down instead of a false 0.
	lastRoutes atomic.Int64
	unknown    sync.Map // option names already logged as unknown
	done       chan struct{}
	once       sync.Once
	stop       context.CancelFunc // ends the event hub's feed
}

// New builds the API; it serves nothing until Serve.
func New(cfg Config) (*Server, error) {
	if err := cfg.defaults(); err != nil {
		return nil, err
	}
	srv := &Server{cfg: cfg, log: cfg.Logger, store: cfg.Store, rdb: cfg.Redis, sync: cfg.Sync, m: cfg.Metrics,
		done: make(chan struct{}), listings: make(chan struct{}, cfg.MaxListings)}
	for _, k := range cfg.APIKeys {
		srv.keys = append(srv.keys, sha256.Sum256([]byte(k)))
	}
	if cfg.RateLimit > 0 {
		srv.limiter = redis_rate.NewLimiter(cfg.Redis)
	}
	base, stop := context.WithCancel(context.Background())
	srv.stop = stop
	srv.hub = newHub(base, cfg.Store, cfg.MaxEventStreams)
	srv.lastRoutes.Store(-1)
	e := echo.New()
	e.HideBanner = true
	e.HidePort = true
	e.HTTPErrorHandler = srv.handleError
	// The client address is the peer's unless the operator names the
	// proxies in front of adminsvc: X-Forwarded-For and X-Real-IP are
	// written by whoever sends the request, so trusting them by default
	// lets anyone pick the key they are rate limited and audited under.
	ipx, err := IPExtractor(cfg.TrustedProxies)
	if err != nil {
		stop()
		return nil, err
	}
	e.IPExtractor = ipx
	// A slow client must not hold a connection forever: the whole request
	// (headers and body) must arrive within ReadTimeout. The server's
	// WriteTimeout stays 0 because /v1/events is a response stream that
	// lasts as long as the client listens; every other response gets its
	// own write deadline (observe). ReadTimeout does not affect an event
	// stream (its request has no body and its headers are read first).
	// Headers get at most 10 s, and never more than the whole request may
	// take: a ReadTimeout below 10 s must cut slow headers too.
	e.Server.ReadHeaderTimeout = min(10*time.Second, cfg.ReadTimeout)
	e.Server.ReadTimeout = cfg.ReadTimeout
	e.Server.WriteTimeout = 0
	e.Server.IdleTimeout = 2 * time.Minute
	// identify runs before rateLimit so callers with a valid key are limited
	// by key; the limiter runs before authenticate so requests answered 401
	// count against the caller's (IP) budget too, slowing key guessing.
	e.Use(srv.recoverer, srv.observe, srv.identify, srv.rateLimit, srv.authenticate)
	srv.routes(e)
	srv.e = e
	return srv, nil
}

func (srv *Server) routes(e *echo.Echo) {
	e.POST("/register", srv.register)
	e.POST("/deregister", srv.deregister)
	e.GET("/routes", srv.listRoutes)
	e.GET("/health", srv.health)
	e.HEAD("/health", srv.health) // load balancers probe with HEAD
	srv.m.watchState(srv.gauges)
	e.GET("/metrics", echo.WrapHandler(srv.m.Handler()))
	// The web console: static assets, served without a key (they hold no
	// data); the page's own API calls carry the key the operator types.
	console := echo.WrapHandler(ui.Handler())
	e.Match([]string{http.MethodGet, http.MethodHead}, "/ui", console)
	e.Match([]string{http.MethodGet, http.MethodHead}, ui.Prefix+"*", console)

	v1 := e.Group("/v1", checkName)
	v1.GET("/openapi.json", srv.openapi)
	v1.GET("/events", srv.events)
	v1.GET("/services", srv.listServices)
	v1.GET("/services/:name", srv.getService)
	v1.DELETE("/services/:name", srv.deleteService)
	v1.PUT("/services/:name/tags", srv.setTags)
	v1.GET("/services/:name/health", srv.serviceHealth)
	v1.POST("/services/:name/maintenance", srv.maintenance)
	v1.PUT("/services/:name/instances/:id", srv.putInstance)
	v1.PATCH("/services/:name/instances/:id", srv.patchInstance)
	v1.DELETE("/services/:name/instances/:id", srv.deleteInstance)
	v1.POST("/services/:name/instances/:id/heartbeat", srv.heartbeat)
}

// Handler is the API as an http.Handler (tests, embedding).
func (srv *Server) Handler() http.Handler { return srv.e }

// Metrics is the exposition the API serves at /metrics; the wiring feeds
// it Kong sync events.
func (srv *Server) Metrics() *Metrics { return srv.m }

// Serve answers on ln until Shutdown; it returns nil after Shutdown.
func (srv *Server) Serve(ln net.Listener) error {
	srv.e.Listener = ln
	if err := srv.e.Start(""); err != nil && !errors.Is(err, http.ErrServerClosed) {
		return err
	}
	return nil
}

// Shutdown ends event streams at once, then waits for other requests
// until ctx ends.
func (srv *Server) Shutdown(ctx context.Context) error {
	srv.Close()
	return srv.e.Shutdown(ctx)
}

// Close ends event streams and the hub's Redis feed; safe to call twice.
func (srv *Server) Close() {
	srv.once.Do(func() {
		close(srv.done)
		srv.stop()
	})
}

// shutdown is closed when the server stops, ending event streams.
func (srv *Server) shutdown() <-chan struct{} { return srv.done }
