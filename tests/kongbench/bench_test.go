// Package kongbench measures the plugin's throughput in a real Kong (the
// build of ../shared/realkong: 3.4.2 in /opt/realkong by default), against
// Kong without a plugin and against an empty go-pdk plugin, with Kong's own
// rate-limiting plugin as a peer. It is a benchmark, not part of `make test`:
// it runs only with KONGBENCH=1 (`make bench-kong`).
//
// Environment: KONGBENCH=1 to run; KONGBENCH_REALKONG (default
// /opt/realkong; /opt/realkong39 for 3.9.3); KONGBENCH_ROUNDS (default 5);
// KONGBENCH_SECONDS per wrk run (default 3); KONGBENCH_ROUTES (comma list of
// route names, default all); KONGBENCH_OUT (a file the markdown tables are
// also written to); KONGBENCH_SR_BIN (a prebuilt plugin binary named
// service-registry, e.g. of an older commit).
package kongbench

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/kong-service-registry/service-registry/internal/redistest"
	"github.com/kong-service-registry/service-registry/internal/registry"
	"github.com/kong-service-registry/service-registry/internal/testbin"
)

// route is one benchmarked Kong route.
type route struct {
	name   string // also its path: /<name>
	what   string // table label
	plugin string // plugin server measured for PDK calls ("" = none)
	yml    string // the route's plugins: block (indented), "" = none
}

const (
	empty     = "empty-gopdk"
	emptyLean = "empty-lean"
)

func routes(redisPort int) []route {
	redis := fmt.Sprintf("redis: {host: 127.0.0.1, port: %d, timeout_ms: 500}", redisPort)
	sr := func(cfg string) string {
		return "    plugins:\n    - name: service-registry\n      config: {" + cfg + "}\n"
	}
	krl := func(policy string) string {
		return fmt.Sprintf("    plugins:\n    - name: rate-limiting\n      config: {second: 1000000, policy: %s, limit_by: service, redis_host: 127.0.0.1, redis_port: %d, redis_timeout: 500}\n", policy, redisPort)
	}
	// The limit is far above what 2 cores can send: every request is admitted,
	// so the limiter's admitted path is what is measured.
	rl := "rate_limit: {enabled: true, requests_per_second: 1000000, burst: 1000}"
	cb := "circuit_breaker: {enabled: true}"
	return []route{
		{name: "a", what: "(a) route without plugins"},
		{name: "b", what: "(b) empty go-pdk plugin (access + log)", plugin: empty,
			yml: "    plugins:\n    - name: " + empty + "\n"},
		{name: "b-lean", what: "(b') empty plugin on tests/kongbench/pdkserve's loop", plugin: emptyLean,
			yml: "    plugins:\n    - name: " + emptyLean + "\n"},
		{name: "b-access", what: "(b) without the log handler (access only)", plugin: "access-only",
			yml: "    plugins:\n    - name: access-only\n"},
		{name: "b-ser", what: "(b) + log phase: kong.log.serialize", plugin: "log-serialize",
			yml: "    plugins:\n    - name: log-serialize\n"},
		{name: "b-status", what: "(b) + log phase: get_status + nginx.get_ctx(balancer_data)", plugin: "log-status",
			yml: "    plugins:\n    - name: log-status\n"},
		{name: "c", what: "(c) service-registry registry=kong", plugin: "service-registry",
			yml: sr("registry: kong, " + redis)},
		{name: "d", what: "(d) registry=redis (discovery)", plugin: "service-registry",
			yml: sr("registry: redis, service: bench, " + redis)},
		{name: "d-rl", what: "(d) + rate limit", plugin: "service-registry",
			yml: sr("registry: redis, service: bench, " + redis + ", " + rl)},
		{name: "e", what: "(e) (d) + rate limit + breaker", plugin: "service-registry",
			yml: sr("registry: redis, service: bench, " + redis + ", " + rl + ", " + cb)},
		{name: "krl-redis", what: "Kong rate-limiting, policy redis", yml: krl("redis")},
		{name: "krl-local", what: "Kong rate-limiting, policy local", yml: krl("local")},
	}
}

func declarative(backend string, rs []route) string {
	var b strings.Builder
	b.WriteString("_format_version: \"3.0\"\nservices:\n")
	for _, r := range rs {
		// one Kong service per route, so a limit keyed by service is per route
		fmt.Fprintf(&b, "- name: svc-%s\n  url: http://%s\n  routes:\n  - name: %s\n    paths: [/%s]\n%s", r.name, backend, r.name, r.name, r.yml)
	}
	return b.String()
}

func TestKongBench(t *testing.T) {
	if os.Getenv("KONGBENCH") != "1" {
		t.Skip("real-Kong benchmark: run with KONGBENCH=1 (make bench-kong)")
	}
	realkong := envOr("KONGBENCH_REALKONG", "/opt/realkong")
	if _, err := os.Stat(filepath.Join(realkong, "bin", "kong-start.sh")); err != nil {
		t.Fatalf("no real Kong at %s (KONGBENCH_REALKONG): %v", realkong, err)
	}
	rounds, _ := strconv.Atoi(envOr("KONGBENCH_ROUNDS", "5"))
	secs, _ := strconv.Atoi(envOr("KONGBENCH_SECONDS", "3"))

	dir := t.TempDir()
	// KONGBENCH_SR_BIN: a prebuilt service-registry (e.g. of an older
	// commit, for before/after tables); else built from this tree.
	srBin := os.Getenv("KONGBENCH_SR_BIN")
	if srBin == "" {
		var err error
		if srBin, err = testbin.Build(dir, "./plugins/service-registry", "service-registry",
			"CGO_ENABLED=0", "GOFLAGS=-ldflags=-X=main.version=0.1.0"); err != nil {
			t.Fatal(err)
		}
	}
	emptyBin, err := testbin.Build(dir, "./tests/kongbench/emptyplugin", empty, "CGO_ENABLED=0")
	if err != nil {
		t.Fatal(err)
	}
	leanBin, err := testbin.Build(dir, "./tests/kongbench/emptylean", emptyLean, "CGO_ENABLED=0")
	if err != nil {
		t.Fatal(err)
	}
	var probes []string
	for _, name := range []string{"log-serialize", "log-status", "access-only"} {
		bin, err := testbin.Build(dir, "./tests/kongbench/logprobe", name, "CGO_ENABLED=0")
		if err != nil {
			t.Fatal(err)
		}
		probes = append(probes, bin)
	}
	rs := redistest.Start(t, redistest.Options{})
	backend := startBackend(t)
	st := registry.NewStore(rs.Client(), registry.Options{})
	ctx := context.Background()
	if err := st.EnsureSchema(ctx); err != nil {
		t.Fatal(err)
	}
	if _, err := st.PutInstance(ctx, "bench", registry.Instance{ID: "i1", Address: backend, Weight: 1}); err != nil {
		t.Fatal(err)
	}
	all := routes(rs.Port)
	if only := os.Getenv("KONGBENCH_ROUTES"); only != "" {
		all = selectRoutes(all, strings.Split(only, ","))
	}
	yml := filepath.Join(dir, "kong.yml")
	if err := os.WriteFile(yml, []byte(declarative(backend, all)), 0o644); err != nil {
		t.Fatal(err)
	}
	prefix := filepath.Join(os.TempDir(), fmt.Sprintf("perf-kongbench-%d", os.Getpid()))
	k := startKong(t, realkong, prefix, yml, append([]string{srBin, emptyBin, leanBin}, probes...))
	for _, r := range all {
		waitRouted(t, k.url("/"+r.name))
	}

	res := newResults()
	// warm-up: JIT, connection pools, the registry snapshot, limiter keys
	for _, r := range all {
		runWrk(t, k.url("/"+r.name), 16, 1)
	}
	for round := 0; round < rounds; round++ {
		for _, c := range []int{1, 16} {
			// rotate the order each round so drift hits every route alike
			for i := range all {
				r := all[(i+round)%len(all)]
				before := rs.TotalCalls("hello", "client|setinfo")
				pids := k.workerPIDs()
				if r.plugin != "" {
					if pid, err := k.pluginPID(r.plugin); err == nil {
						pids = append(pids, pid)
					}
				}
				cpu0 := cpuNs(pids...)
				w := runWrk(t, k.url("/"+r.name), c, secs)
				w.cpuNs = cpuNs(pids...) - cpu0
				cmds := rs.TotalCalls("hello", "client|setinfo") - before - 1 // the INFO of `before`
				if w.non2xx > 0 || w.errors > 0 {
					t.Errorf("%s c=%d: %d non-2xx, %d socket errors", r.name, c, w.non2xx, w.errors)
				}
				res.add(r.name, c, round, w, cmds)
			}
		}
	}
	pdk := map[string]float64{}
	for _, r := range all {
		if r.plugin != "" {
			pdk[r.name] = countPDK(t, k, r)
		}
	}
	report := res.table(all, rounds, pdk)
	report = fmt.Sprintf("Kong %s, %d rounds × %d s per route and concurrency, %s\n\n%s",
		realkong, rounds, secs, time.Now().UTC().Format("2006-01-02 15:04 UTC"), report)
	t.Log("\n" + report)
	if out := os.Getenv("KONGBENCH_OUT"); out != "" {
		if err := os.WriteFile(out, []byte(report), 0o644); err != nil {
			t.Error(err)
		}
	}
}

func selectRoutes(all []route, names []string) []route {
	var out []route
	for _, r := range all {
		for _, n := range names {
			if r.name == n {
				out = append(out, r)
			}
		}
	}
	return out
}

func envOr(k, def string) string {
	if v := os.Getenv(k); v != "" {
		return v
	}
	return def
}

// results holds every run by route and concurrency.
type results struct {
	rps  map[string]map[int][]float64 // per round
	cpu  map[string]map[int][]float64 // µs of CPU (Kong worker + the route's plugin server) per request, per round
	reqs map[string]map[int]int64
	cmds map[string]map[int]int64
}

func newResults() *results {
	return &results{rps: map[string]map[int][]float64{}, cpu: map[string]map[int][]float64{}, reqs: map[string]map[int]int64{}, cmds: map[string]map[int]int64{}}
}

func (r *results) add(name string, c, round int, w wrkResult, cmds int64) {
	if r.rps[name] == nil {
		r.rps[name], r.reqs[name], r.cmds[name] = map[int][]float64{}, map[int]int64{}, map[int]int64{}
		r.cpu[name] = map[int][]float64{}
	}
	r.rps[name][c] = append(r.rps[name][c], w.rps)
	if w.requests > 0 {
		r.cpu[name][c] = append(r.cpu[name][c], float64(w.cpuNs)/1e3/float64(w.requests))
	}
	r.reqs[name][c] += w.requests
	r.cmds[name][c] += cmds
}

// ratio is the median over rounds of name's req/s divided by ref's in the
// same round: load that drifts during the run moves both alike.
func (r *results) ratio(name, ref string, c int) float64 {
	a, b := r.rps[name][c], r.rps[ref][c]
	if len(a) == 0 || len(b) != len(a) {
		return 0
	}
	q := make([]float64, len(a))
	for i := range a {
		q[i] = a[i] / b[i]
	}
	return median(q)
}

func (r *results) table(all []route, rounds int, pdk map[string]float64) string {
	var b strings.Builder
	b.WriteString("| route | req/s c=1 | req/s c=16 | ÷(a) c=1 / c=16 | ÷(b) c=1 / c=16 | PDK calls / req | Redis cmds / req c=1 / c=16 |\n")
	b.WriteString("|---|---:|---:|---|---|---:|---|\n")
	for _, rt := range all {
		n := rt.name
		p := "0"
		if v, ok := pdk[n]; ok {
			p = fmt.Sprintf("%.2f", v)
		} else if rt.plugin == "" && n != "a" {
			p = "n/a (Lua)"
		}
		fmt.Fprintf(&b, "| %s | %.0f | %.0f | %s / %s | %s / %s | %s | %.3f / %.3f |\n", rt.what,
			median(r.rps[n][1]), median(r.rps[n][16]),
			f2(r.ratio(n, "a", 1)), f2(r.ratio(n, "a", 16)),
			f2(r.ratio(n, "b", 1)), f2(r.ratio(n, "b", 16)), p,
			perReq(r.cmds[n][1], r.reqs[n][1]), perReq(r.cmds[n][16], r.reqs[n][16]))
	}
	b.WriteString("\nCPU per request (Kong's worker + the route's plugin server, µs, median over rounds) and the capacity it leaves as a ratio: CPU of (a) or (b) ÷ CPU of the route, per round, median. Less disturbed by other processes than req/s.\n\n")
	b.WriteString("| route | CPU µs/req c=1 | CPU µs/req c=16 | capacity ÷(a) c=1 / c=16 | capacity ÷(b) c=1 / c=16 |\n|---|---:|---:|---|---|\n")
	for _, rt := range all {
		n := rt.name
		fmt.Fprintf(&b, "| %s | %.0f | %.0f | %s / %s | %s / %s |\n", rt.what, median(r.cpu[n][1]), median(r.cpu[n][16]),
			f2(cpuRatio(r.cpu["a"][1], r.cpu[n][1])), f2(cpuRatio(r.cpu["a"][16], r.cpu[n][16])),
			f2(cpuRatio(r.cpu["b"][1], r.cpu[n][1])), f2(cpuRatio(r.cpu["b"][16], r.cpu[n][16])))
	}
	b.WriteString("\nPer-round req/s (c=1 | c=16):\n\n")
	for _, rt := range all {
		fmt.Fprintf(&b, "- %s: %s | %s\n", rt.name, ints(r.rps[rt.name][1]), ints(r.rps[rt.name][16]))
	}
	return b.String()
}

// cpuRatio is the median over rounds of ref's CPU per request over the
// route's: the throughput the route keeps relative to ref when CPU-bound.
func cpuRatio(ref, route []float64) float64 {
	if len(ref) == 0 || len(ref) != len(route) {
		return 0
	}
	q := make([]float64, len(ref))
	for i := range ref {
		q[i] = ref[i] / route[i]
	}
	return median(q)
}

func f2(v float64) string {
	if v == 0 {
		return "–"
	}
	return fmt.Sprintf("%.2f", v)
}

func perReq(cmds, reqs int64) float64 {
	if reqs == 0 {
		return 0
	}
	return float64(cmds) / float64(reqs)
}

func ints(v []float64) string {
	s := make([]string, len(v))
	for i, x := range v {
		s[i] = strconv.Itoa(int(x))
	}
	return strings.Join(s, " ")
}

func median(v []float64) float64 {
	if len(v) == 0 {
		return 0
	}
	s := append([]float64(nil), v...)
	sort.Float64s(s)
	if len(s)%2 == 1 {
		return s[len(s)/2]
	}
	return (s[len(s)/2-1] + s[len(s)/2]) / 2
}
