package load

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"sort"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/kong-service-registry/service-registry/internal/redistest"
	"github.com/kong-service-registry/service-registry/internal/registry"
	"github.com/kong-service-registry/service-registry/tests/faults"
	"github.com/kong-service-registry/service-registry/tests/harness"
)

func TestMain(m *testing.M) {
	code := m.Run()
	faults.CleanupBuilds()
	os.Exit(code)
}

// stats collects latencies per operation.
type stats struct {
	mu  sync.Mutex
	lat map[string][]time.Duration
	bad map[string]int
}

func (s *stats) add(op string, d time.Duration, ok bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.lat[op] = append(s.lat[op], d)
	if !ok {
		s.bad[op]++
	}
}

func pct(ds []time.Duration, p int) time.Duration {
	if len(ds) == 0 {
		return 0
	}
	s := append([]time.Duration(nil), ds...)
	sort.Slice(s, func(i, j int) bool { return s[i] < s[j] })
	i := (len(s)*p + 99) / 100
	return s[max(0, min(i, len(s))-1)]
}

// Mixed registry API load: per worker, register, list every 3rd op,
// deregister every 4th route it registered. At the end the registry holds
// exactly the routes acknowledged as registered and not deregistered.
func TestRegistryAPIMixedLoad(t *testing.T) {
	const workers, opsPerWorker = 8, 250 // 2 000 calls
	rs := redistest.Start(t, redistest.Options{AppendFsync: "always"})
	a := faults.StartAdminsvc(t, faults.AdminOptions{RedisURL: rs.URL(), Env: map[string]string{"SR_LOG_LEVEL": "warn"}})
	hc := &http.Client{Timeout: 10 * time.Second, Transport: &http.Transport{MaxIdleConnsPerHost: workers}}
	post := func(path string, body any) (int, error) {
		js, _ := json.Marshal(body)
		r, err := hc.Post(a.URL+path, "application/json", bytes.NewReader(js))
		if err != nil {
			return 0, err
		}
		_, _ = io.Copy(io.Discard, r.Body)
		r.Body.Close()
		return r.StatusCode, nil
	}
	st := &stats{lat: map[string][]time.Duration{}, bad: map[string]int{}}
	var mu sync.Mutex
	want := map[string]bool{}
	deadline := time.Now().Add(60 * time.Second)
	var wg sync.WaitGroup
	t0 := time.Now()
	for w := 0; w < workers; w++ {
		wg.Add(1)
		go func(w int) {
			defer wg.Done()
			var mine []string
			for i := 0; i < opsPerWorker && time.Now().Before(deadline); i++ {
				s := time.Now()
				switch {
				case i%3 == 2:
					r, err := hc.Get(a.URL + "/routes")
					ok := err == nil && r.StatusCode == 200
					if err == nil {
						_, _ = io.Copy(io.Discard, r.Body)
						r.Body.Close()
					}
					st.add("list", time.Since(s), ok)
				case i%4 == 3 && len(mine) > 0:
					victim := mine[0]
					mine = mine[1:]
					var hp struct{ h, p string }
					_, _ = fmt.Sscanf(victim, "%s %s", &hp.h, &hp.p)
					code, err := post("/deregister", map[string]string{"host": hp.h, "path": hp.p})
					ok := err == nil && code == 200
					st.add("deregister", time.Since(s), ok)
					if ok {
						mu.Lock()
						delete(want, hp.h+hp.p)
						mu.Unlock()
					}
				default:
					h, p := fmt.Sprintf("w%d.load.test", w), fmt.Sprintf("/r%d", i)
					code, err := post("/register", map[string]string{"host": h, "path": p, "backend": fmt.Sprintf("http://10.2.%d.%d:80", w, i%250+1)})
					ok := err == nil && code == 200
					st.add("register", time.Since(s), ok)
					if ok {
						mine = append(mine, h+" "+p)
						mu.Lock()
						want[h+p] = true
						mu.Unlock()
					}
				}
			}
		}(w)
	}
	wg.Wait()
	elapsed := time.Since(t0)

	r, err := hc.Get(a.URL + "/routes")
	if err != nil {
		t.Fatal(err)
	}
	var body struct {
		Routes []struct{ Host, Path string }
		Total  int
	}
	_ = json.NewDecoder(r.Body).Decode(&body)
	r.Body.Close()
	have := map[string]bool{}
	for _, x := range body.Routes {
		have[x.Host+x.Path] = true
	}
	lost, extra := 0, 0
	for k := range want {
		if !have[k] {
			lost++
		}
	}
	for k := range have {
		if !want[k] {
			extra++
		}
	}
	total := 0
	for op, ds := range st.lat {
		total += len(ds)
		t.Logf("RESULT load=registry-api op=%s calls=%d failed=%d p50=%v p99=%v", op, len(ds), st.bad[op], pct(ds, 50), pct(ds, 99))
	}
	t.Logf("RESULT load=registry-api calls=%d workers=%d elapsed=%v throughput=%.0f/s routes=%d lost=%d unexpected=%d",
		total, workers, elapsed.Round(time.Millisecond), float64(total)/elapsed.Seconds(), len(have), lost, extra)
	for op, n := range st.bad {
		if n > 0 {
			t.Errorf("%d %s calls failed", n, op)
		}
	}
	if lost > 0 || extra > 0 {
		t.Fatalf("registry disagrees with the acknowledged calls: %d lost, %d unexpected", lost, extra)
	}
	if total < workers*opsPerWorker {
		t.Fatalf("only %d of %d calls ran within the time cap", total, workers*opsPerWorker)
	}
}

// Plugin through the harness: a fixed number of requests at fixed
// concurrency, all answered 200 by a registered instance, in the
// registered weights; every request reached exactly one backend.
func TestPluginThroughHarnessLoad(t *testing.T) {
	const requests, conc = 4000, 8
	rs := redistest.Start(t, redistest.Options{})
	st := registry.NewStore(rs.Client(), registry.Options{})
	var hits [3]atomic.Int64
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	for i := range hits {
		i := i
		be := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			hits[i].Add(1)
			_, _ = io.WriteString(w, "ok")
		}))
		t.Cleanup(be.Close)
		if _, err := st.PutInstance(ctx, "orders", registry.Instance{ID: fmt.Sprint(i), Address: be.Listener.Addr().String(), Weight: i + 1}); err != nil {
			t.Fatal(err)
		}
	}
	k := harness.Start(t, harness.Options{Binary: faults.PluginBinary(t), Workers: 2})
	k.KeepRequestStats(false)
	k.AddService(harness.Service{Name: "orders", Host: "127.0.0.1", Port: 9, Retries: harness.Int(0)})
	if _, err := k.AddRoute(harness.Route{Name: "orders", Service: "orders", Paths: []string{"/orders"}}); err != nil {
		t.Fatal(err)
	}
	if _, err := k.AddPlugin(harness.PluginConfig{Service: "orders", Config: map[string]any{
		"registry": "redis", "service": "orders", "redis": map[string]any{"host": "127.0.0.1", "port": rs.Port, "timeout_ms": 500},
	}}); err != nil {
		t.Fatal(err)
	}
	hc := &http.Client{Timeout: 10 * time.Second, Transport: &http.Transport{MaxIdleConnsPerHost: conc}}
	// Warm: the first request loads the snapshot.
	if r, err := hc.Get(k.URL() + "/orders"); err != nil || r.StatusCode != 200 {
		t.Fatalf("warm-up: %v %v", r, err)
	} else {
		r.Body.Close()
	}
	for i := range hits {
		hits[i].Store(0)
	}
	var next atomic.Int64
	lat := make([]time.Duration, requests)
	codes := make([]int, requests)
	deadline := time.Now().Add(60 * time.Second)
	var wg sync.WaitGroup
	t0 := time.Now()
	for c := 0; c < conc; c++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for {
				i := int(next.Add(1)) - 1
				if i >= requests || time.Now().After(deadline) {
					return
				}
				s := time.Now()
				r, err := hc.Get(k.URL() + "/orders")
				lat[i] = time.Since(s)
				if err != nil {
					codes[i] = -1
					continue
				}
				_, _ = io.Copy(io.Discard, r.Body)
				r.Body.Close()
				codes[i] = r.StatusCode
			}
		}()
	}
	wg.Wait()
	elapsed := time.Since(t0)
	failed := 0
	for _, c := range codes {
		if c != 200 {
			failed++
		}
	}
	var sum int64
	var got [3]int64
	for i := range hits {
		got[i] = hits[i].Load()
		sum += got[i]
	}
	t.Logf("RESULT load=plugin-harness requests=%d concurrency=%d elapsed=%v throughput=%.0f/s p50=%v p99=%v failed=%d backend_hits=%v",
		requests, conc, elapsed.Round(time.Millisecond), float64(requests)/elapsed.Seconds(), pct(lat, 50), pct(lat, 99), failed, got)
	if failed > 0 || sum != requests {
		t.Fatalf("%d failed, backends saw %d of %d requests", failed, sum, requests)
	}
	// Weights 1:2:3 over 4 000 requests: the smooth schedule is exact per
	// period of 6; a snapshot reload restarts the period, so allow 1.5 %
	// for reloads on a slow machine.
	for i := range got {
		want := int64(requests) * int64(i+1) / 6
		if d := got[i] - want; d < -60 || d > 60 {
			t.Errorf("instance %d got %d, want %d±60 (weights 1:2:3)", i, got[i], want)
		}
	}
}
