package realkong

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"os"
	"sort"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/kong-service-registry/service-registry/internal/redistest"
	"github.com/kong-service-registry/service-registry/internal/registry"
)

// envBench turns TestFastPathBench on (make bench-fastpath); the other
// tests' Kongs are then not started ahead.
const envBench = "SR_FASTBENCH"

// TestFastPathBench is issue 16's acceptance 1: in a real Kong, DB-less and
// DB mode (Kong's own update frequencies, not the suite's 1 s), with
// SR_FASTBENCH_ROUTES (10 000) routes registered and synced, new
// registrations are each timed from the POST /register answer to the first
// 200 through Kong's proxy (polled back to back): SR_FASTBENCH_N (100) with
// the fast path on and SR_FASTBENCH_N_OFF (default N) with it off
// (SR_FAST_PATH), in the same run, adminsvc restarted in between. The 10 000 are written through the store API in
// process (the write POST /register makes) and synced into Kong by
// adminsvc, whose full reconcile gets 10 minutes (SR_RECONCILE_INTERVAL:
// a reconcile's deadline is max(interval, 1 min), and writing 50 000
// entities into a DB-mode Kong takes longer than a minute).
func TestFastPathBench(t *testing.T) {
	if os.Getenv(envBench) == "" {
		t.Skip(envBench + " is not set (make bench-fastpath)")
	}
	p := benchPlan{routes: envInt(t, "SR_FASTBENCH_ROUTES", 10000, 2), n: envInt(t, "SR_FASTBENCH_N", 100, 2),
		modes: []string{modeBenchDBLess, modeBenchDB}}
	p.nOff = envInt(t, "SR_FASTBENCH_N_OFF", p.n, 0)
	if g := os.Getenv("SR_FASTBENCH_GAP"); g != "" {
		var err error
		if p.gap, err = time.ParseDuration(g); err != nil {
			t.Fatalf("SR_FASTBENCH_GAP: %v", err)
		}
	}
	if m := os.Getenv("SR_FASTBENCH_MODES"); m != "" {
		p.modes = strings.Fields(m) // bench-dbless bench-db
	}
	var rows []string
	for _, dir := range kongDirs(t) {
		t.Run(buildVersion(dir), func(t *testing.T) { rows = append(rows, fastBench(t, dir, p)...) })
	}
	out := "| Kong | mode | fast path | registrations | p50 | p99 | max | existing route p99 | existing route max | route without plugin p99 | route without plugin max |\n|---|---|---|---|---|---|---|---|---|---|---|\n" + strings.Join(rows, "\n") + "\n"
	t.Logf("register → first 200 through Kong, %d routes present:\n%s", p.routes, out)
	if f := os.Getenv("SR_FASTBENCH_OUT"); f != "" {
		if err := os.WriteFile(f, []byte(out), 0o644); err != nil {
			t.Error(err)
		}
	}
}

// benchPlan is what TestFastPathBench measures: routes present, n
// registrations with the fast path on and nOff (0: none) with it off, gap
// between two registrations, Kong modes.
type benchPlan struct {
	routes, n, nOff int
	gap             time.Duration
	modes           []string
}

func envInt(t *testing.T, name string, def, least int) int {
	v := os.Getenv(name)
	if v == "" {
		return def
	}
	n, err := strconv.Atoi(v)
	if err != nil || n < least {
		t.Fatalf("%s=%q: want an integer ≥ %d", name, v, least)
	}
	return n
}

// fastBench runs one Kong build: DB-less, then DB mode; two rows each.
func fastBench(t *testing.T, dir string, p benchPlan) []string {
	rs := redistest.Start(t, redistest.Options{})
	store := registry.NewStore(rs.Client(), registry.Options{})
	be := newBackend(t, "bench")
	t0 := time.Now()
	preloadRoutes(t, store, p.routes, be)
	t.Logf("%d routes written to the registry in %s", p.routes, time.Since(t0).Round(time.Millisecond))
	var rows []string
	for _, mode := range p.modes {
		k := sharedKong(t, dir, mode)
		t0 = time.Now()
		s := startSvc(t, k, rs.URL(), benchSvcEnv(true))
		waitSynced(t, k, p.routes, t0)
		rows = append(rows, timeBlocks(t, k, s, rs, be, mode, p)...)
		s.proc.Stop()
		k.down(t)                         // its CPU is the next Kong's now
		for i := 0; i < p.n+p.nOff; i++ { // the next Kong starts with the 10 000 only
			_, err := store.DeregisterRoute(context.Background(), benchHost(mode, i), "/")
			if err != nil && !errors.Is(err, registry.ErrRouteNotFound) {
				t.Fatal(err)
			}
		}
	}
	return rows
}

func benchSvcEnv(fast bool) map[string]string {
	// SR_KONG_TIMEOUT: Kong answers a 14 MB POST /config only once it has
	// loaded it (30 s and more here); adminsvc's 10 s default gives up and
	// posts it again, forever.
	// SR_KONG_LEASE_TTL: the sync lease must outlive that call, or adminsvc
	// drops the result and pushes again.
	env := map[string]string{"SR_FAST_PATH": onOff(fast), "SR_RECONCILE_INTERVAL": "10m", "SR_KONG_TIMEOUT": "5m",
		"SR_KONG_LEASE_TTL": "10m"}
	// SR_FASTBENCH_SVC_ENV: more adminsvc settings, NAME=value separated
	// by spaces (e.g. SR_KONG_SYNC_MAX_DELAY=30s).
	for _, kv := range strings.Fields(os.Getenv("SR_FASTBENCH_SVC_ENV")) {
		if n, v, ok := strings.Cut(kv, "="); ok {
			env[n] = v
		}
	}
	return env
}

// waitSynced waits until Kong holds the routes (the catch-all aside) and
// routes the last one by its own route.
func waitSynced(t *testing.T, k *kong, routes int, t0 time.Time) {
	t.Helper()
	for got := 0; got < routes; got = countManagedRoutes(t, k) {
		if time.Since(t0) > 30*time.Minute {
			t.Fatalf("%d of %d managed routes in kong after 30 minutes", got, routes)
		}
		time.Sleep(time.Second) // each count reads 11 pages of 1 000 routes
	}
	benchDedicated(t, k, benchHost("pre", routes-1))
	t.Logf("kong %s %s: %d routes synced and routed %s after adminsvc started", k.version, k.mode, routes, time.Since(t0).Round(time.Millisecond))
}

// timeBlocks times p.n registrations (hosts <kind><i>) with the fast path
// on, then p.nOff with it off, adminsvc restarted with the setting in
// between. It returns a table row per block.
func timeBlocks(t *testing.T, k *kong, s *svc, rs *redistest.Server, be *backendSrv, kind string, p benchPlan) []string {
	t.Helper()
	var rows []string
	i := 0
	for b, on := range []bool{true, false} {
		count := p.n
		if !on {
			count = p.nOff
		}
		if count == 0 {
			continue
		}
		if b > 0 {
			s.proc.Stop()
			*s = *startSvc(t, k, rs.URL(), benchSvcEnv(on))
		}
		waitCatchAll(t, k, on)
		waitQuiet(t, k, benchHost("pre", 0))
		plain := startPlainPeer(t, k, be)
		peer := startPeer(k, benchHost("pre", 0))
		var took []time.Duration
		var spans []span
		for j := 0; j < count; j++ {
			time.Sleep(p.gap) // pacing, not waiting for state
			d := registerToFirst200(t, s, k, benchHost(kind, i), be)
			took = append(took, d)
			spans = append(spans, span{end: time.Now(), took: d})
			i++
		}
		peerRow := peerCells(t, k, onOff(on), spans, peer, plain)
		// Steady state before the next block: the block's last route is
		// on its own route (adminsvc and Kong done with this block).
		benchDedicated(t, k, benchHost(kind, i-1))
		t.Logf("kong %s %s block %d (fast path %s) done", k.version, k.mode, b+1, onOff(on))
		label := onOff(on)
		if p.gap > 0 {
			label += ", " + p.gap.String() + " apart"
		}
		rows = append(rows, benchRow(k, label, took)+peerRow)
	}
	return rows
}

// span is one timed registration: when its first 200 came and how long
// after the register answer.
type span struct {
	end  time.Time
	took time.Duration
}

// peerPoll is the block's peer: one client sending GETs back to back to a
// route Kong already routes by its own route, so Kong's own stalls (a
// worker busy rebuilding its router or plugins iterator) show on a request
// the fast path has nothing to do with.
type peerPoll struct {
	done chan struct{}
	wg   sync.WaitGroup
	mu   sync.Mutex
	reqs []span // end, latency
}

func startPeer(k *kong, host string) *peerPoll {
	pp := &peerPoll{done: make(chan struct{})}
	c := &http.Client{Timeout: 10 * time.Minute}
	pp.wg.Add(1)
	go func() {
		defer pp.wg.Done()
		for {
			select {
			case <-pp.done:
				return
			default:
			}
			t0 := time.Now()
			if sendOnce(c, k.proxy+"/", host) != 200 {
				time.Sleep(time.Millisecond) // Kong down: do not spin
				continue
			}
			end := time.Now()
			pp.mu.Lock()
			pp.reqs = append(pp.reqs, span{end: end, took: end.Sub(t0)})
			pp.mu.Unlock()
		}
	}()
	return pp
}

// stop ends the poll.
func (pp *peerPoll) stop() {
	close(pp.done)
	pp.wg.Wait()
}

// worst is the slowest of the peer's requests that overlapped [from, to].
func (pp *peerPoll) worst(from, to time.Time) time.Duration {
	var w time.Duration
	for _, q := range pp.reqs {
		if q.end.After(from) && q.end.Add(-q.took).Before(to) && q.took > w {
			w = q.took
		}
	}
	return w
}

// cells are the peer's table cells: p99 and max of its latencies ("–"
// without a peer or requests).
func (pp *peerPoll) cells() string {
	if pp == nil || len(pp.reqs) == 0 {
		return " – | – |"
	}
	d := make([]time.Duration, len(pp.reqs))
	for i, q := range pp.reqs {
		d[i] = q.took
	}
	sort.Slice(d, func(i, j int) bool { return d[i] < d[j] })
	return fmt.Sprintf(" %s | %s (%d requests) |", ms(d[(99*len(d)+99)/100-1]), ms(d[len(d)-1]), len(d))
}

// peerCells stops the block's peers, logs every registration over 50 ms
// with the slowest request of each peer that overlapped it, and returns
// the peers' table cells. plain may be nil (DB-less: no plain route).
func peerCells(t *testing.T, k *kong, label string, regs []span, peer, plain *peerPoll) string {
	t.Helper()
	peer.stop()
	if plain != nil {
		plain.stop()
	}
	for _, r := range regs {
		if r.took < 50*time.Millisecond {
			continue
		}
		from := r.end.Add(-r.took)
		msg := fmt.Sprintf("kong %s %s fast path %s: a registration took %s; the slowest request overlapping it to an existing route took %s",
			k.version, k.mode, label, r.took.Round(time.Microsecond), peer.worst(from, r.end).Round(time.Microsecond))
		if plain != nil {
			msg += fmt.Sprintf(", to the route without the plugin %s", plain.worst(from, r.end).Round(time.Microsecond))
		}
		t.Log(msg)
	}
	return peer.cells() + plain.cells()
}

// plainHost is a route the bench adds to a DB-mode Kong beside adminsvc's:
// no plugin, its service's host an IP address (Kong's balancer does no
// name lookup), so a stall it shows is Kong's worker alone, not the plugin
// server's nor the balancer's upstream lookups.
const plainHost = "plain.bench.example.com"

// startPlainPeer adds that route (DB mode; not tagged as adminsvc's, so
// its sync leaves it) once, and polls it; nil in DB-less mode, where
// adminsvc's pushes own the whole config.
func startPlainPeer(t *testing.T, k *kong, be *backendSrv) *peerPoll {
	t.Helper()
	if !isDB(k.mode) {
		return nil
	}
	if _, ok := k.find(t, "services", "bench-plain"); !ok {
		if err := k.adminJSON("POST", "/services", map[string]any{"name": "bench-plain", "url": "http://" + be.addr()}, nil); err != nil {
			t.Fatal(err)
		}
		if err := k.adminJSON("POST", "/services/bench-plain/routes", map[string]any{"name": "bench-plain", "hosts": []string{plainHost}}, nil); err != nil {
			t.Fatal(err)
		}
	}
	waitFor(t, 30*time.Minute, plainHost+" routed", func() bool {
		status, route := benchGet(k, plainHost)
		return status == 200 && route == "bench-plain"
	})
	return startPeer(k, plainHost)
}

func onOff(on bool) string {
	if on {
		return "on"
	}
	return "off"
}

func benchHost(kind string, i int) string { return fmt.Sprintf("%s%d.bench.example.com", kind, i) }

// preloadRoutes registers n routes (host pre<i>, path /, backend be) with
// the store's RegisterRoute, the write POST /register makes, 8 at a time.
func preloadRoutes(t *testing.T, store *registry.Store, n int, be *backendSrv) {
	t.Helper()
	parallel(t, n, func(i int) error {
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		_, _, err := store.RegisterRoute(ctx, registry.Route{Host: benchHost("pre", i), Path: "/", Backend: "http://" + be.addr()})
		return err
	})
}

// countManagedRoutes counts Kong's routes tagged as ours but the
// catch-all, page by page; -1 when Kong does not answer in time.
func countManagedRoutes(t *testing.T, k *kong) int {
	t.Helper()
	n, path := 0, "/routes?size=1000&tags=managed-by:service-registry"
	for path != "" {
		var page struct {
			Data []map[string]any
			Next *string
		}
		if err := k.adminJSON("GET", path, nil, &page); err != nil {
			// Kong's one worker is busy loading a 14 MB config: not yet.
			t.Logf("counting kong's routes: %v", err)
			return -1
		}
		for _, r := range page.Data {
			if r["name"] != fastPathRoute {
				n++
			}
		}
		path = ""
		if page.Next != nil {
			path = *page.Next
		}
	}
	return n
}

// waitCatchAll waits until an unknown host is matched by the catch-all
// (on) or by nothing (off).
func waitCatchAll(t *testing.T, k *kong, on bool) {
	t.Helper()
	want := ""
	if on {
		want = fastPathRoute
	}
	waitFor(t, 30*time.Minute, "catch-all "+onOff(on), func() bool {
		status, route := benchGet(k, "nobody.bench.example.com")
		return status == 404 && route == want
	})
}

// benchDedicated waits until host answers 200 through its own route.
func benchDedicated(t *testing.T, k *kong, host string) {
	t.Helper()
	want := registry.ServiceName(host, "/")
	waitFor(t, 30*time.Minute, host+" served by "+want, func() bool {
		status, route := benchGet(k, host)
		return status == 200 && route == want
	})
}

// benchClient waits as long as Kong's one worker may be busy loading a
// 10 000-route config (minutes here): the proxy does not answer meanwhile.
var benchClient = &http.Client{Timeout: 10 * time.Minute}

// benchGet is one GET host/ with Kong-Debug: status (-1: no answer) and
// the route Kong matched.
func benchGet(k *kong, host string) (int, string) {
	req, err := http.NewRequest("GET", k.proxy+"/", nil)
	if err != nil {
		return -1, ""
	}
	req.Host = host
	req.Header.Set("Kong-Debug", "1")
	resp, err := benchClient.Do(req)
	if err != nil {
		return -1, ""
	}
	_, _ = io.Copy(io.Discard, resp.Body)
	_ = resp.Body.Close()
	return resp.StatusCode, resp.Header.Get("Kong-Route-Name")
}

// registerToFirst200 registers host → be and polls Kong's proxy back to
// back until it answers 200; the time is from the register answer.
func registerToFirst200(t *testing.T, s *svc, k *kong, host string, be *backendSrv) time.Duration {
	t.Helper()
	r := s.do("POST", "/register", `{"host":"`+host+`","path":"/","backend":"http://`+be.addr()+`"}`)
	start := time.Now()
	if r.Status != 200 {
		t.Fatalf("register %s: %s", host, r.Raw)
	}
	for {
		if sendOnce(benchClient, k.proxy+"/", host) == 200 {
			return time.Since(start)
		}
		if time.Since(start) > 30*time.Minute {
			t.Fatalf("%s: no 200 through kong 30 minutes after the registration", host)
		}
	}
}

// benchRow is one table row: nearest-rank p50 and p99, and the max.
func benchRow(k *kong, fast string, d []time.Duration) string {
	sort.Slice(d, func(i, j int) bool { return d[i] < d[j] })
	rank := func(p int) time.Duration { return d[(p*len(d)+99)/100-1] }
	mode := "DB-less"
	if isDB(k.mode) {
		mode = "DB (Postgres)"
	}
	return fmt.Sprintf("| %s | %s | %s | %d | %s | %s | %s |", k.version, mode, fast, len(d), ms(rank(50)), ms(rank(99)), ms(d[len(d)-1]))
}

// ms is a duration in milliseconds with one decimal, as the tables print it.
func ms(x time.Duration) string {
	return strconv.FormatFloat(float64(x.Microseconds())/1000, 'f', 1, 64) + " ms"
}

// quietWindow and quietSlow: a Kong is steady once no request to an
// existing route took over quietSlow for quietWindow.
const (
	quietWindow = 10 * time.Second
	quietSlow   = 50 * time.Millisecond
)

// waitQuiet waits (at most 10 min) until Kong answers an existing route
// steadily: a Kong that has just taken 10 000 routes goes on digesting
// them for tens of seconds (DB mode: cluster events, one balancer per
// upstream; TestKongRegistryShapeStall's quiet probes stalled 258-599 ms
// 10-30 s after the writes, and 4-39 ms without upstreams), and a block
// timed then measures that, not registrations into a Kong holding 10 000
// routes. Logged: how long it took and how many slow requests it saw.
func waitQuiet(t *testing.T, k *kong, host string) {
	t.Helper()
	start := time.Now()
	last, slow, worst := start, 0, time.Duration(0)
	for time.Since(last) < quietWindow {
		if time.Since(start) > 10*time.Minute {
			t.Fatalf("kong %s %s: not steady after %s (%d requests over %s, worst %s)", k.version, k.mode,
				time.Since(start).Round(time.Second), slow, quietSlow, ms(worst))
		}
		t0 := time.Now()
		status, _ := benchGet(k, host)
		if d := time.Since(t0); d > quietSlow || status != 200 {
			last, slow, worst = time.Now(), slow+1, max(worst, d)
		}
	}
	t.Logf("kong %s %s steady after %s (%d requests over %s before, worst %s)", k.version, k.mode,
		time.Since(start).Round(time.Millisecond), slow, quietSlow, ms(worst))
}
