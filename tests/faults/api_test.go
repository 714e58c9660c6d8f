package faults

import (
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"sort"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

// apiClient talks to adminsvc with a hard per-request bound: a request
// that takes longer is a hang, and the suites fail on it.
type apiClient struct {
	base  string
	key   string
	hc    *http.Client
	bound time.Duration
}

func newAPI(base string) *apiClient {
	// Store calls time out at 3 s inside adminsvc; 8 s is a hang.
	return &apiClient{base: base, hc: &http.Client{Timeout: 8 * time.Second}, bound: 8 * time.Second}
}

type apiResp struct {
	Status int
	Body   map[string]any
	Raw    string
	Took   time.Duration
	Err    error
}

func (c *apiClient) do(method, path string, body any) apiResp {
	var rd io.Reader
	if body != nil {
		switch b := body.(type) {
		case string:
			rd = strings.NewReader(b)
		default:
			js, _ := json.Marshal(b)
			rd = bytes.NewReader(js)
		}
	}
	req, err := http.NewRequest(method, c.base+path, rd)
	if err != nil {
		return apiResp{Err: err}
	}
	req.Header.Set("Content-Type", "application/json")
	if c.key != "" {
		req.Header.Set("X-API-Key", c.key)
	}
	t0 := time.Now()
	resp, err := c.hc.Do(req)
	r := apiResp{Took: time.Since(t0), Err: err}
	if err != nil {
		return r
	}
	defer resp.Body.Close()
	raw, _ := io.ReadAll(resp.Body)
	r.Status, r.Raw = resp.StatusCode, string(raw)
	_ = json.Unmarshal(raw, &r.Body)
	r.Took = time.Since(t0)
	return r
}

func (c *apiClient) register(host, path, backend string) apiResp {
	return c.do("POST", "/register", map[string]any{"host": host, "path": path, "backend": backend})
}

// routes returns the registered host+path keys.
func (c *apiClient) routes(t testing.TB) map[string]bool {
	t.Helper()
	out, r := c.tryRoutes()
	if out == nil {
		t.Fatalf("GET /routes: %d %v %s", r.Status, r.Err, r.Raw)
	}
	return out
}

// tryRoutes is routes without failing the test (nil when not 200).
func (c *apiClient) tryRoutes() (map[string]bool, apiResp) {
	r := c.do("GET", "/routes", nil)
	if r.Status != 200 {
		return nil, r
	}
	out := map[string]bool{}
	list, _ := r.Body["routes"].([]any)
	for _, x := range list {
		m := x.(map[string]any)
		out[fmt.Sprint(m["host"], m["path"])] = true
	}
	return out, r
}

// loadResult is what a registration load saw.
type loadResult struct {
	sent, acked, failed, hung int64
	ackedKeys                 []string
	// recovery: from the moment the fault ended to the first 200, per worker.
	recoveries []time.Duration
}

// registerLoad runs workers registering distinct routes until stop closes,
// recording which were acknowledged (200). faultEnd, once set, lets each
// worker measure its recovery time.
func registerLoad(api *apiClient, workers int, stop <-chan struct{}, faultEnd *atomic.Int64, maxPerWorker int) *loadResult {
	res := &loadResult{}
	var mu sync.Mutex
	var wg sync.WaitGroup
	for w := 0; w < workers; w++ {
		wg.Add(1)
		go func(w int) {
			defer wg.Done()
			recovered := false
			for i := 0; i < maxPerWorker; i++ {
				select {
				case <-stop:
					return
				default:
				}
				host := fmt.Sprintf("w%d.load.test", w)
				path := fmt.Sprintf("/r%d", i)
				r := api.register(host, path, fmt.Sprintf("http://10.0.%d.%d:8080", w, i%250+1))
				mu.Lock()
				res.sent++
				switch {
				case r.Err != nil && r.Took >= api.bound-100*time.Millisecond:
					res.hung++
				case r.Status == 200:
					res.acked++
					res.ackedKeys = append(res.ackedKeys, host+path)
					if end := faultEnd.Load(); end != 0 && !recovered {
						recovered = true
						res.recoveries = append(res.recoveries, time.Since(time.Unix(0, end)))
					}
				default:
					res.failed++
				}
				mu.Unlock()
				if r.Status != 200 {
					time.Sleep(20 * time.Millisecond) // don't spin on a dead store
				}
			}
		}(w)
	}
	wg.Wait()
	return res
}

// p99 of ds (0 for none).
func p99(ds []time.Duration) time.Duration {
	if len(ds) == 0 {
		return 0
	}
	s := append([]time.Duration(nil), ds...)
	sort.Slice(s, func(i, j int) bool { return s[i] < s[j] })
	idx := (len(s)*99 + 99) / 100
	if idx > len(s) {
		idx = len(s)
	}
	return s[idx-1]
}

// waitHealthy polls /health until 200.
func waitHealthy(t testing.TB, api *apiClient, d time.Duration) {
	t.Helper()
	waitUntil(t, d, "adminsvc /health 200", func() bool { return api.do("GET", "/health", nil).Status == 200 })
}
