package adminsvc_test

import (
	"bufio"
	"context"
	"fmt"
	"io"
	"net"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/kong-service-registry/service-registry/internal/redistest"
)

// TestRateLimitIgnoresForgedForwardedHeaders: without trusted proxies the
// client is the peer address, whatever X-Forwarded-For/X-Real-IP claim.
func TestRateLimitIgnoresForgedForwardedHeaders(t *testing.T) {
	rs := redistest.Start(t, redistest.Options{})
	s := startSvc(t, svcOpts{Redis: rs.URL(), Env: map[string]string{"SR_RATE_LIMIT": "5"}})
	limited := 0
	for i := 0; i < 10; i++ {
		ip := fmt.Sprintf("203.0.113.%d", i+1)
		if s.do("GET", "/routes", "", "X-Forwarded-For", ip, "X-Real-IP", ip).Status == 429 {
			limited++
		}
	}
	if limited != 5 {
		t.Fatalf("%d of 10 spoofed-IP requests limited at 5/min, want 5", limited)
	}
}

// TestRateLimitTrustedProxy: with SR_TRUSTED_PROXIES naming the peer, its
// X-Forwarded-For is the client, so distinct clients get distinct budgets.
func TestRateLimitTrustedProxy(t *testing.T) {
	rs := redistest.Start(t, redistest.Options{})
	s := startSvc(t, svcOpts{Redis: rs.URL(), Env: map[string]string{"SR_RATE_LIMIT": "2", "SR_TRUSTED_PROXIES": "127.0.0.0/8"}})
	for i := 0; i < 6; i++ {
		ip := fmt.Sprintf("203.0.113.%d", i+1)
		if r := s.do("GET", "/routes", "", "X-Forwarded-For", ip); r.Status != 200 {
			t.Fatalf("client %s behind the trusted proxy: %d %s", ip, r.Status, r.Raw)
		}
	}
	limited := 0
	for i := 0; i < 4; i++ {
		if s.do("GET", "/routes", "", "X-Forwarded-For", "198.51.100.7").Status == 429 {
			limited++
		}
	}
	if limited != 2 {
		t.Fatalf("one client behind the proxy: %d of 4 limited at 2/min, want 2", limited)
	}
}

// TestUnauthorizedRequestsCountAgainstLimit: key guessing is rate limited.
func TestUnauthorizedRequestsCountAgainstLimit(t *testing.T) {
	rs := redistest.Start(t, redistest.Options{})
	s := startSvc(t, svcOpts{Redis: rs.URL(), Env: map[string]string{"SR_RATE_LIMIT": "5", "SR_API_KEYS": "good-key"}})
	statuses := map[int]int{}
	for i := 0; i < 10; i++ {
		statuses[s.do("GET", "/routes", "", "X-API-Key", fmt.Sprintf("guess-%d", i)).Status]++
	}
	if statuses[401] != 5 || statuses[429] != 5 {
		t.Fatalf("10 wrong keys at 5/min: %v, want 5 401 and 5 429", statuses)
	}
	// A valid key has its own budget.
	if r := s.do("GET", "/routes", "", "X-API-Key", "good-key"); r.Status != 200 {
		t.Fatalf("valid key after the IP's budget is spent: %d %s", r.Status, r.Raw)
	}
}

// TestSlowBodyIsCutOff: a client trickling its body is disconnected after
// the read timeout, while an event stream outlives it.
func TestSlowBodyIsCutOff(t *testing.T) {
	rs := redistest.Start(t, redistest.Options{})
	s := startSvc(t, svcOpts{Redis: rs.URL(), Env: map[string]string{"SR_READ_TIMEOUT": "1s"}})

	// An event stream opened now must still deliver after 2 read timeouts.
	req, _ := http.NewRequestWithContext(t.Context(), "GET", s.URL+"/v1/events", nil)
	res, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer res.Body.Close()
	lines := make(chan string, 64)
	go func() {
		sc := bufio.NewScanner(res.Body)
		for sc.Scan() {
			lines <- sc.Text()
		}
		close(lines)
	}()

	conn, err := net.Dial("tcp", strings.TrimPrefix(s.URL, "http://"))
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	start := time.Now()
	fmt.Fprintf(conn, "POST /register HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nContent-Length: 1000\r\n\r\n{")
	// Trickle one byte every 200ms; the server must hang up within the
	// 1s read timeout plus an honest margin, not read forever.
	closed := make(chan time.Duration, 1)
	go func() {
		_ = conn.SetReadDeadline(time.Now().Add(20 * time.Second))
		_, _ = io.Copy(io.Discard, conn)
		closed <- time.Since(start)
	}()
	tick := time.NewTicker(200 * time.Millisecond)
	defer tick.Stop()
	var took time.Duration
wait:
	for {
		select {
		case took = <-closed:
			break wait
		case <-tick.C:
			_, _ = conn.Write([]byte(" "))
		}
	}
	if took > 10*time.Second {
		t.Fatalf("slow body held the connection for %s with a 1s read timeout", took)
	}

	if time.Since(start) < 1500*time.Millisecond {
		// make sure the stream has outlived the read timeout before checking it
		waitFor(t, 5*time.Second, "1.5s to pass", func() bool { return time.Since(start) >= 1500*time.Millisecond })
	}
	s.do("POST", "/register", `{"host":"slow.example.com","path":"/","backend":"http://ev:1"}`)
	deadline := time.After(10 * time.Second)
	for {
		select {
		case l, ok := <-lines:
			if !ok {
				t.Fatal("event stream closed by the read timeout")
			}
			if strings.HasPrefix(l, "data: ") && strings.Contains(l, "slow.example.com") {
				return
			}
		case <-deadline:
			t.Fatal("no change event on a stream older than the read timeout")
		}
	}
}

// TestV1NamesValidatedAtTheEdge: a bad service name is a 400 naming the
// field, never the store's internal error text.
func TestV1NamesValidatedAtTheEdge(t *testing.T) {
	rs := redistest.Start(t, redistest.Options{})
	s := startSvc(t, svcOpts{Redis: rs.URL()})
	for path, want := range map[string]string{
		"/v1/services/sv%7Bc/instances/a": "name: must not contain braces",
		"/v1/services/_index/instances/a": "name: must not start with '_' (reserved)",
		"/v1/services/_x/instances/a":     "name: must not start with '_' (reserved)",
	} {
		r := s.do("PUT", path, `{"address":"10.0.0.1:80","weight":1}`)
		if r.Status != 400 || r.Body["error"] != want {
			t.Errorf("PUT %s: %d %s, want 400 %q", path, r.Status, r.Raw, want)
		}
		if strings.Contains(r.Raw, "registry") {
			t.Errorf("PUT %s leaks internals: %s", path, r.Raw)
		}
	}
	for _, m := range [][2]string{{"GET", "/v1/services/_index"}, {"PUT", "/v1/services/_index/tags"}, {"POST", "/v1/services/_index/maintenance"}} {
		if r := s.do(m[0], m[1], `{}`); r.Status != 400 || r.Body["error"] != "name: must not start with '_' (reserved)" {
			t.Errorf("%s %s: %d %s", m[0], m[1], r.Status, r.Raw)
		}
	}
	if keys, _ := rs.Client().Keys(t.Context(), "*{_index}:service*").Result(); len(keys) != 0 {
		t.Fatalf("a service hash was written under the index tag: %v", keys)
	}
}

// openStream opens /v1/events and returns its status and a line channel.
func openStream(t *testing.T, s *svc) (int, <-chan string, func()) {
	t.Helper()
	ctx, cancel := context.WithCancel(t.Context())
	req, _ := http.NewRequestWithContext(ctx, "GET", s.URL+"/v1/events", nil)
	res, err := http.DefaultClient.Do(req)
	if err != nil {
		cancel()
		t.Fatal(err)
	}
	lines := make(chan string, 64)
	go func() {
		defer close(lines)
		sc := bufio.NewScanner(res.Body)
		for sc.Scan() {
			lines <- sc.Text()
		}
	}()
	return res.StatusCode, lines, func() { cancel(); res.Body.Close() }
}

// TestEventStreamsShareOneSubscriptionAndAreCapped: many /v1/events
// clients cost one Redis pub/sub subscription; past the cap, 503.
func TestEventStreamsShareOneSubscriptionAndAreCapped(t *testing.T) {
	rs := redistest.Start(t, redistest.Options{})
	s := startSvc(t, svcOpts{Redis: rs.URL(), Env: map[string]string{"SR_MAX_EVENT_STREAMS": "3"}})
	rdb := rs.Client()
	subscribers := func() int64 {
		n, err := rdb.PubSubNumSub(t.Context(), "sr:v1:changes").Result()
		if err != nil {
			t.Fatal(err)
		}
		return n["sr:v1:changes"]
	}
	// The Kong reconciler holds one subscription of its own.
	waitFor(t, 10*time.Second, "the reconciler's subscription", func() bool { return subscribers() == 1 })
	var streams []<-chan string
	var closers []func()
	for i := 0; i < 3; i++ {
		st, lines, stop := openStream(t, s)
		if st != 200 {
			t.Fatalf("stream %d: %d", i, st)
		}
		streams, closers = append(streams, lines), append(closers, stop)
	}
	if n := subscribers() - 1; n != 1 {
		t.Fatalf("3 event streams hold %d Redis subscriptions, want 1", n)
	}
	if st, _, stop := openStream(t, s); st != 503 {
		stop()
		t.Fatalf("4th stream past a cap of 3: %d, want 503", st)
	} else {
		stop()
	}
	s.do("POST", "/register", `{"host":"fan.example.com","path":"/","backend":"http://ev:1"}`)
	for i, lines := range streams {
		deadline := time.After(10 * time.Second)
	read:
		for {
			select {
			case l, ok := <-lines:
				if !ok {
					t.Fatalf("stream %d closed", i)
				}
				if strings.HasPrefix(l, "data: ") && strings.Contains(l, "fan.example.com") {
					break read
				}
			case <-deadline:
				t.Fatalf("stream %d: no change event", i)
			}
		}
	}
	// A closed stream frees its slot; the last one closed frees the subscription.
	closers[0]()
	waitFor(t, 10*time.Second, "a free stream slot", func() bool {
		st, _, stop := openStream(t, s)
		stop()
		return st == 200
	})
	for _, stop := range closers[1:] {
		stop()
	}
	waitFor(t, 10*time.Second, "the streams' subscription to close", func() bool { return subscribers() == 1 })
}
