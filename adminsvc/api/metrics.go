package api

import (
	"fmt"
	"io"
	"math"
	"sort"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"github.com/kong-service-registry/service-registry/internal/kongsync"
)

// Metrics is a small hand-written Prometheus exposition: counters, gauges
// and one latency histogram. Enough for the registry; no client library.
type Metrics struct {
	registrations   atomic.Int64
	deregistrations atomic.Int64
	conflicts       atomic.Int64
	rateLimited     atomic.Int64
	unauthorized    atomic.Int64
	reconcileRuns   atomic.Int64
	reconcileErrors atomic.Int64
	reconcileWrites atomic.Int64
	configPushes    atomic.Int64
	kongRefused     atomic.Int64
	kongCalls       atomic.Int64

	mu       sync.Mutex
	requests map[string]int64 // "method code" → count
	kongLat  histogram
}

var latencyBuckets = []float64{0.001, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10}

type histogram struct {
	counts []int64
	sum    float64
	n      int64
}

// NewMetrics returns zeroed metrics.
func NewMetrics() *Metrics {
	return &Metrics{requests: map[string]int64{}, kongLat: histogram{counts: make([]int64, len(latencyBuckets))}}
}

func (m *Metrics) request(method string, code int) {
	m.mu.Lock()
	m.requests[method+" "+strconv.Itoa(code)]++
	m.mu.Unlock()
}

// ObserveKong records one Kong Admin API call's latency
// (kongsync.Options.ObserveLatency).
func (m *Metrics) ObserveKong(d time.Duration) {
	s := d.Seconds()
	m.mu.Lock()
	defer m.mu.Unlock()
	for i, b := range latencyBuckets {
		if s <= b {
			m.kongLat.counts[i]++
		}
	}
	m.kongLat.sum += s
	m.kongLat.n++
	m.kongCalls.Add(1)
}

// ObserveApply counts one Kong sync run (kongsync.ReconcilerOptions.OnApply).
func (m *Metrics) ObserveApply(r kongsync.Result, err error) {
	m.reconcileRuns.Add(1)
	if err != nil {
		m.reconcileErrors.Add(1)
	}
	if r.Mode == kongsync.ModeDB {
		m.reconcileWrites.Add(int64(r.Changes()))
	}
	if r.Pushed {
		m.configPushes.Add(1)
	}
	m.kongRefused.Add(int64(len(r.Refused)))
}

type gauges struct {
	routes  int64
	pending int64
	leader  bool
	up      bool
}

func (m *Metrics) write(w io.Writer, g gauges) {
	c := func(name, help string, v int64) {
		fmt.Fprintf(w, "# HELP %s %s\n# TYPE %s counter\n%s %d\n", name, help, name, name, v)
	}
	gv := func(name, help string, v int64) {
		fmt.Fprintf(w, "# HELP %s %s\n# TYPE %s gauge\n%s %d\n", name, help, name, name, v)
	}
	b2i := func(b bool) int64 {
		if b {
			return 1
		}
		return 0
	}
	c("sr_registrations_total", "Routes registered (new registrations only).", m.registrations.Load())
	c("sr_deregistrations_total", "Routes deregistered.", m.deregistrations.Load())
	c("sr_registration_conflicts_total", "Registrations refused with 409.", m.conflicts.Load())
	c("sr_rate_limited_total", "Registry API requests refused by the per-client rate limit.", m.rateLimited.Load())
	c("sr_unauthorized_total", "Registry API requests refused for a missing or wrong API key.", m.unauthorized.Load())
	c("sr_reconcile_runs_total", "Kong reconciles run by this replica.", m.reconcileRuns.Load())
	c("sr_reconcile_errors_total", "Kong reconciles that failed.", m.reconcileErrors.Load())
	c("sr_reconcile_drift_fixed_total", "Kong entities created, updated or deleted by reconciles (DB mode).", m.reconcileWrites.Load())
	c("sr_kong_config_pushes_total", "DB-less POST /config pushes.", m.configPushes.Load())
	c("sr_kong_refused_services_total", "Registry services Kong refused in DB-less pushes (pushed without them).", m.kongRefused.Load())
	gv("sr_registered_routes", "Routes in the registry.", g.routes)
	gv("sr_pending_changes", "Registry changes not yet applied to Kong.", g.pending)
	gv("sr_kong_sync_leader", "1 when this replica holds the Kong sync lease.", b2i(g.leader))
	gv("sr_store_up", "1 when the registry store answered.", b2i(g.up))

	m.mu.Lock()
	defer m.mu.Unlock()
	fmt.Fprintf(w, "# HELP sr_http_requests_total Registry API requests by method and status.\n# TYPE sr_http_requests_total counter\n")
	keys := make([]string, 0, len(m.requests))
	for k := range m.requests {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	for _, k := range keys {
		var method string
		var code int
		fmt.Sscanf(k, "%s %d", &method, &code)
		fmt.Fprintf(w, "sr_http_requests_total{method=%q,code=\"%d\"} %d\n", method, code, m.requests[k])
	}
	fmt.Fprintf(w, "# HELP sr_kong_request_duration_seconds Kong Admin API call latency.\n# TYPE sr_kong_request_duration_seconds histogram\n")
	for i, b := range latencyBuckets {
		fmt.Fprintf(w, "sr_kong_request_duration_seconds_bucket{le=%q} %d\n", strconv.FormatFloat(b, 'g', -1, 64), m.kongLat.counts[i])
	}
	fmt.Fprintf(w, "sr_kong_request_duration_seconds_bucket{le=\"+Inf\"} %d\n", m.kongLat.n)
	sum := m.kongLat.sum
	if math.IsNaN(sum) {
		sum = 0
	}
	fmt.Fprintf(w, "sr_kong_request_duration_seconds_sum %g\nsr_kong_request_duration_seconds_count %d\n", sum, m.kongLat.n)
}
