package faults

import (
	"context"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"strconv"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/kong-service-registry/service-registry/internal/registry"
	"github.com/kong-service-registry/service-registry/tests/harness"
)

// backend is one registry instance: a loopback HTTP server naming itself.
type backend struct {
	id     string
	srv    *httptest.Server
	hits   atomic.Int64
	status atomic.Int64 // answered instead of 200 when set
}

func newBackend(t testing.TB, id string) *backend {
	b := &backend{id: id}
	b.srv = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		b.hits.Add(1)
		w.Header().Set("X-Instance", id)
		if s := b.status.Load(); s != 0 {
			w.WriteHeader(int(s))
		}
		_, _ = io.WriteString(w, id)
	}))
	t.Cleanup(b.srv.Close)
	return b
}

func (b *backend) addr() string { return b.srv.Listener.Addr().String() }

// gateway is a harness Kong with the real plugin on route /orders.
type gateway struct {
	t    testing.TB
	kong *harness.Kong
	hc   *http.Client
}

func startGateway(t testing.TB, cfg map[string]any) *gateway {
	t.Helper()
	k := harness.Start(t, harness.Options{Binary: PluginBinary(t), Workers: 2, RespawnDelay: 100 * time.Millisecond})
	k.KeepRequestStats(false)
	// Kong's own target is a closed port: only the plugin's set_target reaches a backend.
	k.AddService(harness.Service{Name: "orders", Host: "127.0.0.1", Port: 9, Retries: harness.Int(0)})
	if _, err := k.AddRoute(harness.Route{Name: "orders", Service: "orders", Paths: []string{"/orders"}}); err != nil {
		t.Fatal(err)
	}
	if _, err := k.AddPlugin(harness.PluginConfig{Service: "orders", Config: cfg}); err != nil {
		t.Fatalf("plugin config refused: %v", err)
	}
	return &gateway{t: t, kong: k, hc: &http.Client{Timeout: 5 * time.Second}}
}

func putInstance(t testing.TB, st *registry.Store, b *backend) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if _, err := st.PutInstance(ctx, "orders", registry.Instance{ID: b.id, Address: b.addr(), Weight: 1}); err != nil {
		t.Fatal(err)
	}
}

// traffic sends requests from workers until stopped and tallies what came back.
type traffic struct {
	mu        sync.Mutex
	byStatus  map[int]int
	byInst    map[string]int
	latencies []time.Duration
	stop      chan struct{}
	wg        sync.WaitGroup
	sent      atomic.Int64
	lastErrAt atomic.Int64 // unix ns of the last non-200
	ok200     atomic.Int64
}

func (g *gateway) startTraffic(workers int, path string) *traffic {
	tr := &traffic{byStatus: map[int]int{}, byInst: map[string]int{}, stop: make(chan struct{})}
	for w := 0; w < workers; w++ {
		tr.wg.Add(1)
		go func() {
			defer tr.wg.Done()
			for i := 0; i < 200000; i++ { // bounded; Stop ends it long before
				select {
				case <-tr.stop:
					return
				default:
				}
				t0 := time.Now()
				status, inst := -1, ""
				resp, err := g.hc.Get(g.kong.URL() + path)
				if err == nil {
					_, _ = io.Copy(io.Discard, resp.Body)
					resp.Body.Close()
					status, inst = resp.StatusCode, resp.Header.Get("X-Instance")
				}
				d := time.Since(t0)
				tr.sent.Add(1)
				if status != 200 {
					tr.lastErrAt.Store(time.Now().UnixNano())
				} else {
					tr.ok200.Add(1)
				}
				tr.mu.Lock()
				tr.byStatus[status]++
				if inst != "" {
					tr.byInst[inst]++
				}
				tr.latencies = append(tr.latencies, d)
				tr.mu.Unlock()
				time.Sleep(2 * time.Millisecond) // steady, not saturating: 2 cores are shared
			}
		}()
	}
	return tr
}

// snapshot returns and resets the tallies.
func (tr *traffic) take() (map[int]int, map[string]int, []time.Duration) {
	tr.mu.Lock()
	defer tr.mu.Unlock()
	s, i, l := tr.byStatus, tr.byInst, tr.latencies
	tr.byStatus, tr.byInst, tr.latencies = map[int]int{}, map[string]int{}, nil
	return s, i, l
}

func (tr *traffic) Stop() {
	select {
	case <-tr.stop:
	default:
		close(tr.stop)
	}
	tr.wg.Wait()
}

func maxDur(ds []time.Duration) time.Duration {
	var m time.Duration
	for _, d := range ds {
		if d > m {
			m = d
		}
	}
	return m
}

// openFDs counts a process's open file descriptors (sockets included): a
// leak of Redis connections shows up here.
func openFDs(pid int) int {
	ents, err := os.ReadDir("/proc/" + strconv.Itoa(pid) + "/fd")
	if err != nil {
		return -1
	}
	return len(ents)
}

func hostPort(addr string) (string, int) {
	h, p, _ := net.SplitHostPort(addr)
	n, _ := strconv.Atoi(p)
	return h, n
}
