package main

import (
	"context"
	"crypto/sha256"
	"crypto/subtle"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/go-redis/redis_rate/v10"
	"github.com/labstack/echo/v4"
	"github.com/redis/go-redis/v9"

	"github.com/kong-service-registry/service-registry/internal/kongsync"
	"github.com/kong-service-registry/service-registry/internal/registry"
)

// server is the HTTP side of adminsvc.
type server struct {
	s       *Settings
	log     *slog.Logger
	rdb     redis.UniversalClient
	store   *registry.Store
	rec     *kongsync.Reconciler
	syncer  *kongsync.Syncer
	keys    [][32]byte // sha256 of each API key: compared in constant time
	limiter *redis_rate.Limiter
	m       *metrics
	e       *echo.Echo
	hub     *hub
	unknown sync.Map // option names already logged as unknown
	done    chan struct{}
	once    sync.Once
	stop    context.CancelFunc // ends the event hub's feed
}

// shutdown is closed when the server stops, ending event streams.
func (srv *server) shutdown() <-chan struct{} { return srv.done }

func (srv *server) close() {
	srv.once.Do(func() {
		close(srv.done)
		srv.stop()
	})
}

// apiError is an error with the status and message the client sees.
type apiError struct {
	status int
	msg    string
}

func (e *apiError) Error() string { return e.msg }

func badRequest(format string, a ...any) error {
	return &apiError{http.StatusBadRequest, fmt.Sprintf(format, a...)}
}

func newServer(s *Settings, log *slog.Logger, rdb redis.UniversalClient, store *registry.Store,
	syncer *kongsync.Syncer, rec *kongsync.Reconciler, keys []string, m *metrics) (*server, error) {
	srv := &server{s: s, log: log, rdb: rdb, store: store, syncer: syncer, rec: rec, m: m, done: make(chan struct{})}
	for _, k := range keys {
		srv.keys = append(srv.keys, sha256.Sum256([]byte(k)))
	}
	if s.RateLimit > 0 {
		srv.limiter = redis_rate.NewLimiter(rdb)
	}
	base, stop := context.WithCancel(context.Background())
	srv.stop = stop
	srv.hub = newHub(base, store, s.MaxEventStreams)
	e := echo.New()
	e.HideBanner = true
	e.HidePort = true
	e.HTTPErrorHandler = srv.handleError
	// The client address is the peer's unless the operator names the
	// proxies in front of adminsvc: X-Forwarded-For and X-Real-IP are
	// written by whoever sends the request, so trusting them by default
	// lets anyone pick the key they are rate limited and audited under.
	ipx, err := ipExtractor(s.TrustedProxies)
	if err != nil {
		return nil, err
	}
	e.IPExtractor = ipx
	// A slow client must not hold a connection forever: the whole request
	// (headers and body) must arrive within ReadTimeout. WriteTimeout stays
	// 0 because /v1/events is a response stream that lasts as long as the
	// client listens; ReadTimeout does not affect it (the request of an
	// event stream has no body and its headers are read before it starts).
	e.Server.ReadHeaderTimeout = 10 * time.Second
	e.Server.ReadTimeout = s.ReadTimeout
	e.Server.WriteTimeout = 0
	e.Server.IdleTimeout = 2 * time.Minute
	// identify runs before rateLimit so callers with a valid key are limited
	// by key; the limiter runs before authenticate so requests answered 401
	// count against the caller's (IP) budget too, slowing key guessing.
	e.Use(srv.recoverer, srv.observe, srv.identify, srv.rateLimit, srv.authenticate)

	e.POST("/register", srv.register)
	e.POST("/deregister", srv.deregister)
	e.GET("/routes", srv.routes)
	e.GET("/health", srv.health)
	e.GET("/metrics", srv.metrics)

	v1 := e.Group("/v1", checkName)
	v1.GET("/openapi.json", srv.openapi)
	v1.GET("/events", srv.events)
	v1.GET("/services", srv.listServices)
	v1.GET("/services/:name", srv.getService)
	v1.PUT("/services/:name/tags", srv.setTags)
	v1.GET("/services/:name/health", srv.serviceHealth)
	v1.POST("/services/:name/maintenance", srv.maintenance)
	v1.PUT("/services/:name/instances/:id", srv.putInstance)
	v1.PATCH("/services/:name/instances/:id", srv.patchInstance)
	v1.DELETE("/services/:name/instances/:id", srv.deleteInstance)
	v1.POST("/services/:name/instances/:id/heartbeat", srv.heartbeat)
	srv.e = e
	return srv, nil
}

// ipExtractor returns echo's direct (peer address) extractor, or, with
// trusted proxy ranges, one that reads X-Forwarded-For through those
// proxies only (no loopback or private range is trusted implicitly).
func ipExtractor(cidrs string) (echo.IPExtractor, error) {
	ranges := splitAddrs(cidrs)
	if len(ranges) == 0 {
		return echo.ExtractIPDirect(), nil
	}
	opts := []echo.TrustOption{echo.TrustLoopback(false), echo.TrustLinkLocal(false), echo.TrustPrivateNet(false)}
	for _, r := range ranges {
		if !strings.Contains(r, "/") {
			if ip := net.ParseIP(r); ip != nil && ip.To4() != nil {
				r += "/32"
			} else {
				r += "/128"
			}
		}
		_, n, err := net.ParseCIDR(r)
		if err != nil {
			return nil, fmt.Errorf("trusted-proxies: %w", err)
		}
		opts = append(opts, echo.TrustIPRange(n))
	}
	return echo.ExtractIPFromXFFHeader(opts...), nil
}

// handleError is the one place errors become JSON: {"error": "..."}.
func (srv *server) handleError(err error, c echo.Context) {
	if c.Response().Committed {
		return
	}
	status, msg := http.StatusInternalServerError, "internal error"
	var ae *apiError
	var he *echo.HTTPError
	var mbe *http.MaxBytesError
	switch {
	case errors.As(err, &ae):
		status, msg = ae.status, ae.msg
	case errors.As(err, &mbe):
		status, msg = http.StatusRequestEntityTooLarge, fmt.Sprintf("request body too large (limit %d bytes)", mbe.Limit)
	case errors.Is(err, registry.ErrUnavailable):
		status, msg = http.StatusServiceUnavailable, "registry store unavailable"
		srv.log.Error("registry store unavailable", "error", err, "path", c.Path())
	case errors.As(err, &he):
		status = he.Code
		msg = strings.ToLower(fmt.Sprint(he.Message))
	default:
		srv.log.Error("request failed", "error", err, "method", c.Request().Method, "path", c.Request().URL.Path)
	}
	if c.Request().Method == http.MethodHead {
		_ = c.NoContent(status)
		return
	}
	_ = c.JSON(status, map[string]string{"error": msg})
}

func (srv *server) recoverer(next echo.HandlerFunc) echo.HandlerFunc {
	return func(c echo.Context) (err error) {
		defer func() {
			if r := recover(); r != nil {
				srv.log.Error("handler panic", "panic", fmt.Sprint(r), "path", c.Request().URL.Path)
				err = errors.New("panic")
			}
		}()
		return next(c)
	}
}

func (srv *server) observe(next echo.HandlerFunc) echo.HandlerFunc {
	return func(c echo.Context) error {
		start := time.Now()
		// Every body is capped; reading past the cap yields *http.MaxBytesError.
		c.Request().Body = http.MaxBytesReader(c.Response(), c.Request().Body, srv.s.BodyLimit)
		err := next(c)
		if err != nil {
			srv.handleError(err, c)
		}
		status := c.Response().Status
		srv.m.request(c.Request().Method, status)
		srv.log.Debug("request", "method", c.Request().Method, "path", c.Request().URL.Path,
			"status", status, "took", time.Since(start), "remote", c.RealIP())
		return nil
	}
}

// clientID names the caller for rate limiting and audit logs: a short hash
// of its API key (never the key), else its IP.
func clientID(c echo.Context) string {
	if id, ok := c.Get("client").(string); ok {
		return id
	}
	return "ip:" + c.RealIP()
}

func presentedKey(r *http.Request) string {
	if h := r.Header.Get("Authorization"); h != "" {
		if scheme, tok, ok := strings.Cut(h, " "); ok && strings.EqualFold(scheme, "Bearer") {
			return strings.TrimSpace(tok)
		}
	}
	return r.Header.Get("X-API-Key")
}

// identify records who the caller is: "client" (a short hash of a valid
// key) and "authenticated". It refuses nothing; authenticate does.
func (srv *server) identify(next echo.HandlerFunc) echo.HandlerFunc {
	return func(c echo.Context) error {
		if len(srv.keys) == 0 {
			return next(c)
		}
		got := sha256.Sum256([]byte(presentedKey(c.Request())))
		match := 0
		for _, k := range srv.keys {
			// Every key is compared so timing does not reveal which matched.
			match |= subtle.ConstantTimeCompare(got[:], k[:])
		}
		if match == 1 {
			c.Set("client", fmt.Sprintf("key:%x", got[:4]))
			c.Set("authenticated", true)
		}
		return next(c)
	}
}

func (srv *server) authenticate(next echo.HandlerFunc) echo.HandlerFunc {
	return func(c echo.Context) error {
		// /health stays open for load balancers and probes.
		if len(srv.keys) == 0 || c.Request().URL.Path == "/health" {
			return next(c)
		}
		if ok, _ := c.Get("authenticated").(bool); !ok {
			srv.m.unauthorized.Add(1)
			return &apiError{http.StatusUnauthorized, "unauthorized"}
		}
		return next(c)
	}
}

func (srv *server) rateLimit(next echo.HandlerFunc) echo.HandlerFunc {
	return func(c echo.Context) error {
		p := c.Request().URL.Path
		// Opening an event stream counts as one request; the streams
		// themselves are capped separately.
		if srv.limiter == nil || p == "/health" || p == "/metrics" {
			return next(c)
		}
		ctx, cancel := context.WithTimeout(c.Request().Context(), 500*time.Millisecond)
		res, err := srv.limiter.Allow(ctx, srv.s.RedisPrefix+":v1:api-ratelimit:"+clientID(c), redis_rate.PerMinute(srv.s.RateLimit))
		cancel()
		if err != nil {
			// Redis trouble: do not turn it into 429s; the store call will
			// answer 503 if Redis is really gone.
			return next(c)
		}
		if res.Allowed == 0 {
			srv.m.rateLimited.Add(1)
			c.Response().Header().Set("Retry-After", strconv.Itoa(int(res.RetryAfter/time.Second)+1))
			return &apiError{http.StatusTooManyRequests, "rate limit exceeded"}
		}
		return next(c)
	}
}

// readObject decodes a JSON object body into raw fields.
func readObject(c echo.Context) (map[string]json.RawMessage, error) {
	body, err := io.ReadAll(c.Request().Body)
	if err != nil {
		var mbe *http.MaxBytesError
		if errors.As(err, &mbe) {
			return nil, err
		}
		return nil, badRequest("reading body: %v", err)
	}
	var m map[string]json.RawMessage
	if err := json.Unmarshal(body, &m); err != nil {
		var se *json.SyntaxError
		if errors.As(err, &se) || len(strings.TrimSpace(string(body))) == 0 {
			return nil, badRequest("body is not valid json")
		}
		return nil, badRequest("body must be a json object")
	}
	if m == nil {
		return nil, badRequest("body must be a json object")
	}
	return m, nil
}

func stringField(m map[string]json.RawMessage, name string, required bool) (string, error) {
	raw, ok := m[name]
	if !ok || string(raw) == "null" {
		if required {
			return "", badRequest("%s: required", name)
		}
		return "", nil
	}
	var s string
	if err := json.Unmarshal(raw, &s); err != nil {
		return "", badRequest("%s: expected a string", name)
	}
	if required && s == "" {
		return "", badRequest("%s: required", name)
	}
	return s, nil
}

func realIP(addr string) string {
	if h, _, err := net.SplitHostPort(addr); err == nil {
		return h
	}
	return addr
}
