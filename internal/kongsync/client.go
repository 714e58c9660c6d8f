package kongsync

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"net/http"
	"net/url"
	"strings"
	"sync/atomic"
	"time"

	"github.com/kong/go-kong/kong"
)

// client wraps go-kong with retries on 5xx and transport errors only, and
// counts the calls it makes (for /metrics and benchmarks).
type client struct {
	kc       *kong.Client
	attempts int
	backoff  time.Duration
	calls    atomic.Int64
	latency  func(time.Duration)
}

func newClient(adminURL string, headers http.Header, timeout time.Duration, attempts int) (*client, error) {
	if _, err := url.Parse(adminURL); err != nil {
		return nil, fmt.Errorf("kong admin url: %w", err)
	}
	hc := &http.Client{
		Timeout: timeout,
		Transport: &headerTransport{headers: headers, base: &http.Transport{
			DialContext:         (&net.Dialer{Timeout: timeout}).DialContext,
			MaxIdleConnsPerHost: 64,
			IdleConnTimeout:     90 * time.Second,
		}},
	}
	kc, err := kong.NewClient(kong.String(adminURL), hc)
	if err != nil {
		return nil, fmt.Errorf("creating kong client: %w", err)
	}
	if attempts < 1 {
		attempts = 1
	}
	return &client{kc: kc, attempts: attempts, backoff: 100 * time.Millisecond}, nil
}

type headerTransport struct {
	headers http.Header
	base    http.RoundTripper
}

func (t *headerTransport) RoundTrip(r *http.Request) (*http.Response, error) {
	if len(t.headers) > 0 {
		r = r.Clone(r.Context())
		for k, vs := range t.headers {
			for _, v := range vs {
				r.Header.Add(k, v)
			}
		}
	}
	return t.base.RoundTrip(r)
}

// retryable: 5xx and transport errors. A 4xx is Kong telling us something
// about our request; repeating it cannot help.
func retryable(err error) bool {
	var apiErr *kong.APIError
	if errors.As(err, &apiErr) {
		return apiErr.Code() >= 500
	}
	return err != nil && !errors.Is(err, context.Canceled) && !errors.Is(err, context.DeadlineExceeded)
}

// StatusCode returns Kong's HTTP status for err, or 0 for transport errors.
func StatusCode(err error) int {
	var apiErr *kong.APIError
	if errors.As(err, &apiErr) {
		return apiErr.Code()
	}
	return 0
}

// retry runs call until it succeeds, fails with something other than a
// 5xx or transport error, or has run attempts times, backing off between
// tries. It is the only retry loop: every Admin API call goes through it.
func (c *client) retry(ctx context.Context, call func() error) error {
	var err error
	for attempt := 0; attempt < c.attempts; attempt++ {
		if attempt > 0 {
			t := time.NewTimer(c.backoff << (attempt - 1))
			select {
			case <-ctx.Done():
				t.Stop()
				return ctx.Err()
			case <-t.C:
			}
		}
		start := time.Now()
		c.calls.Add(1)
		err = call()
		if c.latency != nil {
			c.latency(time.Since(start))
		}
		if err == nil || !retryable(err) {
			break
		}
	}
	return err
}

// do sends one request, retrying 5xx and transport errors with backoff.
// qs is a go-querystring struct or nil; body is JSON-encoded when non-nil.
func (c *client) do(ctx context.Context, method, path string, qs, body, out any) error {
	err := c.retry(ctx, func() error {
		req, err := c.kc.NewRequest(method, path, qs, body)
		if err != nil {
			return fmt.Errorf("building request: %w", err)
		}
		_, err = c.kc.Do(ctx, req, out)
		return err
	})
	if err != nil {
		return fmt.Errorf("kong %s %s: %w", method, path, err)
	}
	return nil
}

type listQuery struct {
	Size   int    `url:"size,omitempty"`
	Tags   string `url:"tags,omitempty"`
	Offset string `url:"offset,omitempty"`
}

type page[T any] struct {
	Data   rows[T] `json:"data"`
	Offset string  `json:"offset"`
	Next   *string `json:"next"`
}

// rows is a page's "data". Kong 3.4 writes an empty one as {} on
// /tags/{tag} (an empty Lua table encoded by cjson); 3.9 writes [].
type rows[T any] []T

func (r *rows[T]) UnmarshalJSON(b []byte) error {
	if t := bytes.TrimSpace(b); len(t) > 0 && t[0] == '{' {
		var empty map[string]json.RawMessage
		if err := json.Unmarshal(t, &empty); err != nil || len(empty) != 0 {
			return fmt.Errorf("kong page data: expected a list, got an object")
		}
		*r = nil
		return nil
	}
	return json.Unmarshal(b, (*[]T)(r))
}

// list pages through a collection (1000 per page, Kong's maximum), keeping
// the entities tagged tag when tag is set.
func list[T any](ctx context.Context, c *client, path, tag string) ([]T, error) {
	var all []T
	q := listQuery{Size: 1000, Tags: tag}
	for {
		var p page[T]
		if err := c.do(ctx, http.MethodGet, path, q, nil, &p); err != nil {
			return nil, err
		}
		all = append(all, p.Data...)
		if p.Offset == "" || p.Next == nil {
			return all, nil
		}
		q.Offset = p.Offset
	}
}

func escape(s string) string { return url.PathEscape(s) }

func isNotFound(err error) bool { return kong.IsNotFoundErr(err) || StatusCode(err) == 404 }

func joinErrs(errs []error) error {
	if len(errs) == 0 {
		return nil
	}
	msgs := make([]string, 0, min(len(errs), 5))
	for i, e := range errs {
		if i == 5 {
			msgs = append(msgs, fmt.Sprintf("and %d more", len(errs)-5))
			break
		}
		msgs = append(msgs, e.Error())
	}
	return &opErrors{msg: fmt.Sprintf("%d kong operations failed: %s", len(errs), strings.Join(msgs, "; ")), errs: errs}
}

// opErrors reports a few failed operations and keeps all for errors.Is/As.
type opErrors struct {
	msg  string
	errs []error
}

func (e *opErrors) Error() string   { return e.msg }
func (e *opErrors) Unwrap() []error { return e.errs }
