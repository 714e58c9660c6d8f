package client

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"time"
)

// DefaultURL is the registry's address when none is given: the go-proxy
// registry port on this machine.
const DefaultURL = "http://127.0.0.1:81"

// maxBody caps how much of an answer is read; the API's answers are small.
const maxBody = 4 << 20

// Retry is the retry policy for transport errors and 5xx answers.
// Zero fields take the defaults in brackets.
type Retry struct {
	// MaxAttempts counts the first try [4]; 1 disables retries.
	MaxAttempts int
	// BaseDelay is the wait before the second attempt [100ms]; each further
	// wait doubles, up to MaxDelay [5s]. Each wait is jittered to a random
	// value in [d/2, d] so that many clients restarted together spread out.
	BaseDelay time.Duration
	MaxDelay  time.Duration
}

func (r Retry) withDefaults() Retry {
	if r.MaxAttempts <= 0 {
		r.MaxAttempts = 4
	}
	if r.BaseDelay <= 0 {
		r.BaseDelay = 100 * time.Millisecond
	}
	if r.MaxDelay <= 0 {
		r.MaxDelay = 5 * time.Second
	}
	if r.MaxDelay < r.BaseDelay {
		r.MaxDelay = r.BaseDelay
	}
	return r
}

// delay is the jittered wait after the given failed attempt (1-based).
func (r Retry) delay(attempt int) time.Duration {
	d := r.BaseDelay
	for i := 1; i < attempt && d < r.MaxDelay; i++ {
		d *= 2
	}
	if d > r.MaxDelay {
		d = r.MaxDelay
	}
	half := d / 2
	return half + time.Duration(rand.Int64N(int64(half)+1))
}

// Client talks to one registry. It is safe for concurrent use.
type Client struct {
	base      *url.URL
	hc        *http.Client
	apiKey    string
	retry     Retry
	timeout   time.Duration
	userAgent string
}

// Option configures a Client.
type Option func(*Client)

// WithAPIKey sends key with every request (when adminsvc has SR_API_KEYS).
func WithAPIKey(key string) Option { return func(c *Client) { c.apiKey = key } }

// WithHTTPClient replaces the default http.Client (e.g. for TLS settings).
func WithHTTPClient(hc *http.Client) Option { return func(c *Client) { c.hc = hc } }

// WithRetry sets the retry policy; see Retry for the defaults.
func WithRetry(r Retry) Option { return func(c *Client) { c.retry = r } }

// WithTimeout bounds each attempt [10s]; the caller's context bounds the
// whole call including retries.
func WithTimeout(d time.Duration) Option { return func(c *Client) { c.timeout = d } }

// WithUserAgent sets the User-Agent header.
func WithUserAgent(ua string) Option { return func(c *Client) { c.userAgent = ua } }

// New returns a client for the registry at baseURL ("" = DefaultURL).
func New(baseURL string, opts ...Option) (*Client, error) {
	if baseURL == "" {
		baseURL = DefaultURL
	}
	u, err := url.Parse(baseURL)
	if err != nil {
		return nil, fmt.Errorf("parsing registry url: %w", err)
	}
	if (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
		return nil, fmt.Errorf("registry url %q: want http(s)://host[:port]", baseURL)
	}
	u.Path = strings.TrimRight(u.Path, "/")
	c := &Client{
		base:      u,
		hc:        &http.Client{},
		timeout:   10 * time.Second,
		userAgent: "service-registry-client",
	}
	for _, o := range opts {
		o(c)
	}
	c.retry = c.retry.withDefaults()
	return c, nil
}

// BaseURL returns the registry address the client talks to.
func (c *Client) BaseURL() string { return c.base.String() }

type call struct {
	method string
	path   string // already escaped
	query  url.Values
	in     any
	out    any
	// keep5xx: hand a 5xx answer back at once instead of retrying (for
	// /health, whose 503 is an answer, not a failure to get one).
	keep5xx bool
}

// do runs one API call with retries. A 2xx answer is decoded into out.
func (c *Client) do(ctx context.Context, cl call) error {
	var body []byte
	if cl.in != nil {
		b, err := json.Marshal(cl.in)
		if err != nil {
			return fmt.Errorf("encoding %s %s request: %w", cl.method, cl.path, err)
		}
		body = b
	}
	// cl.path is already escaped segment by segment, so plain
	// concatenation keeps names like "a/b" from changing the route.
	target := c.base.String() + cl.path
	if len(cl.query) > 0 {
		target += "?" + cl.query.Encode()
	}

	var lastErr error
	for attempt := 1; ; attempt++ {
		status, data, header, err := c.once(ctx, cl.method, target, body)
		switch {
		case err != nil:
			if ctx.Err() != nil {
				return fmt.Errorf("registry %s %s: %w", cl.method, cl.path, ctx.Err())
			}
			lastErr = fmt.Errorf("registry %s %s: %w: %w", cl.method, cl.path, ErrUnavailable, err)
		case status >= 200 && status < 300:
			if cl.out == nil || len(bytes.TrimSpace(data)) == 0 {
				return nil
			}
			if err := json.Unmarshal(data, cl.out); err != nil {
				return fmt.Errorf("registry %s %s: decoding answer: %w", cl.method, cl.path, err)
			}
			return nil
		default:
			apiErr := &APIError{Method: cl.method, Path: cl.path, StatusCode: status, Body: data, Message: errorMessage(data)}
			if status < 500 || cl.keep5xx {
				return apiErr
			}
			lastErr = apiErr
		}
		if attempt >= c.retry.MaxAttempts {
			return lastErr
		}
		wait := c.retry.delay(attempt)
		if ra := retryAfter(header); ra > 0 && ra <= c.retry.MaxDelay {
			wait = ra
		}
		t := time.NewTimer(wait)
		select {
		case <-ctx.Done():
			t.Stop()
			return fmt.Errorf("registry %s %s: %w (last error: %w)", cl.method, cl.path, ctx.Err(), lastErr)
		case <-t.C:
		}
	}
}

// once is one HTTP exchange bounded by the per-attempt timeout.
func (c *Client) once(ctx context.Context, method, target string, body []byte) (int, []byte, http.Header, error) {
	actx, cancel := context.WithTimeout(ctx, c.timeout)
	defer cancel()
	var rd io.Reader
	if body != nil {
		rd = bytes.NewReader(body)
	}
	req, err := http.NewRequestWithContext(actx, method, target, rd)
	if err != nil {
		return 0, nil, nil, fmt.Errorf("building request: %w", err)
	}
	req.Header.Set("Accept", "application/json")
	if body != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	if c.apiKey != "" {
		req.Header.Set("X-API-Key", c.apiKey)
		req.Header.Set("Authorization", "Bearer "+c.apiKey)
	}
	if c.userAgent != "" {
		req.Header.Set("User-Agent", c.userAgent)
	}
	resp, err := c.hc.Do(req)
	if err != nil {
		return 0, nil, nil, err
	}
	defer resp.Body.Close()
	data, err := io.ReadAll(io.LimitReader(resp.Body, maxBody))
	if err != nil {
		return 0, nil, nil, fmt.Errorf("reading answer: %w", err)
	}
	return resp.StatusCode, data, resp.Header, nil
}

func errorMessage(data []byte) string {
	var e struct {
		Error   string `json:"error"`
		Message string `json:"message"`
	}
	if json.Unmarshal(data, &e) == nil {
		if e.Error != "" {
			return e.Error
		}
		return e.Message
	}
	return strings.TrimSpace(string(data[:min(len(data), 200)]))
}

// retryAfter reads a Retry-After header given in seconds.
func retryAfter(h http.Header) time.Duration {
	if h == nil {
		return 0
	}
	s := h.Get("Retry-After")
	if s == "" {
		return 0
	}
	n, err := strconv.Atoi(s)
	if err != nil || n < 0 {
		return 0
	}
	return time.Duration(n) * time.Second
}

// IsUnavailable reports whether err means the registry could not be reached
// or failed (5xx) — as opposed to refusing the request (4xx).
func IsUnavailable(err error) bool { return errors.Is(err, ErrUnavailable) }
