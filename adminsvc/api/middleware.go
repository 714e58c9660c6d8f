package api

import (
	"context"
	"crypto/sha256"
	"crypto/subtle"
	"fmt"
	"net"
	"net/http"
	"strconv"
	"strings"
	"time"

	"github.com/go-redis/redis_rate/v10"
	"github.com/labstack/echo/v4"

	"github.com/kong-service-registry/service-registry/adminsvc/ui"
)

// IPExtractor returns echo's direct (peer address) extractor, or, with
// trusted proxy ranges (comma-separated CIDRs or IPs), one that reads
// X-Forwarded-For through those proxies only (no loopback or private range
// is trusted implicitly).
func IPExtractor(cidrs string) (echo.IPExtractor, error) {
	ranges := splitList(cidrs)
	if len(ranges) == 0 {
		return echo.ExtractIPDirect(), nil
	}
	opts := []echo.TrustOption{echo.TrustLoopback(false), echo.TrustLinkLocal(false), echo.TrustPrivateNet(false)}
	for _, r := range ranges {
		n, err := parseCIDROrIP(r)
		if err != nil {
			return nil, fmt.Errorf("trusted-proxies: %w", err)
		}
		opts = append(opts, echo.TrustIPRange(n))
	}
	return echo.ExtractIPFromXFFHeader(opts...), nil
}

// parseCIDROrIP reads "10.0.0.0/8" or a bare IP (a /32 or /128).
func parseCIDROrIP(r string) (*net.IPNet, error) {
	if !strings.Contains(r, "/") {
		if ip := net.ParseIP(r); ip != nil && ip.To4() != nil {
			r += "/32"
		} else {
			r += "/128"
		}
	}
	_, n, err := net.ParseCIDR(r)
	return n, err
}

func splitList(s string) []string {
	var out []string
	for _, a := range strings.Split(s, ",") {
		if a = strings.TrimSpace(a); a != "" {
			out = append(out, a)
		}
	}
	return out
}

func (srv *Server) recoverer(next echo.HandlerFunc) echo.HandlerFunc {
	return func(c echo.Context) (err error) {
		defer func() {
			if r := recover(); r != nil {
				if r == http.ErrAbortHandler {
					panic(r) // net/http cuts the connection without logging
				}
				err = &echo.HTTPError{Code: http.StatusInternalServerError, Message: message("internal error"),
					Internal: fmt.Errorf("handler panic: %v", r)}
			}
		}()
		return next(c)
	}
}

func (srv *Server) observe(next echo.HandlerFunc) echo.HandlerFunc {
	return func(c echo.Context) error {
		start := time.Now()
		// Every body is capped; reading past the cap yields *http.MaxBytesError.
		c.Request().Body = http.MaxBytesReader(c.Response(), c.Request().Body, srv.cfg.BodyLimit)
		// A response must be written within WriteTimeout, or the
		// connection is cut and what the handler held is released; only
		// the event stream lives as long as its client listens.
		if c.Request().URL.Path != "/v1/events" {
			_ = http.NewResponseController(c.Response().Writer).SetWriteDeadline(start.Add(srv.cfg.WriteTimeout))
		}
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
func (srv *Server) identify(next echo.HandlerFunc) echo.HandlerFunc {
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

func (srv *Server) authenticate(next echo.HandlerFunc) echo.HandlerFunc {
	return func(c echo.Context) error {
		// /health stays open for load balancers and probes, the console's
		// assets for the browser that has not typed a key yet.
		if len(srv.keys) == 0 || c.Request().URL.Path == "/health" || isConsole(c.Request().URL.Path) {
			return next(c)
		}
		if ok, _ := c.Get("authenticated").(bool); !ok {
			srv.m.unauthorized.Add(1)
			return httpError(http.StatusUnauthorized, "unauthorized")
		}
		return next(c)
	}
}

func (srv *Server) rateLimit(next echo.HandlerFunc) echo.HandlerFunc {
	return func(c echo.Context) error {
		p := c.Request().URL.Path
		// Opening an event stream counts as one request; the streams
		// themselves are capped separately.
		if srv.limiter == nil || p == "/health" || p == "/metrics" || isConsole(p) {
			return next(c)
		}
		ctx, cancel := context.WithTimeout(c.Request().Context(), 500*time.Millisecond)
		res, err := srv.limiter.Allow(ctx, srv.cfg.Prefix+":v1:api-ratelimit:"+clientID(c), redis_rate.PerMinute(srv.cfg.RateLimit))
		cancel()
		if err != nil {
			// Redis trouble: do not turn it into 429s; the store call will
			// answer 503 if Redis is really gone.
			return next(c)
		}
		if res.Allowed == 0 {
			srv.m.rateLimited.Add(1)
			c.Response().Header().Set("Retry-After", strconv.Itoa(int(res.RetryAfter/time.Second)+1))
			return httpError(http.StatusTooManyRequests, "rate limit exceeded")
		}
		return next(c)
	}
}

// isConsole is true for the web console's static assets (adminsvc/ui).
func isConsole(p string) bool {
	return p == "/ui" || strings.HasPrefix(p, ui.Prefix)
}
