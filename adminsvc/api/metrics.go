package api

import (
	"context"
	"net/http"
	"strconv"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"

	"github.com/kong-service-registry/service-registry/internal/kongsync"
)

// Metrics are adminsvc's Prometheus metrics (prometheus/client_golang). The
// names are the ones the hand-written exposition had, so dashboards and
// alerts keep working; added since: sr_kong_sync_duration_seconds (sync
// latency), sr_event_streams, and the Go runtime and process collectors.
// sr_pending_changes is the sync queue depth. One format change: labels
// come sorted (sr_http_requests_total{code="200",method="POST"}).
type Metrics struct {
	reg *prometheus.Registry

	registrations   prometheus.Counter
	deregistrations prometheus.Counter
	conflicts       prometheus.Counter
	rateLimited     prometheus.Counter
	unauthorized    prometheus.Counter
	reconcileRuns   prometheus.Counter
	reconcileErrors prometheus.Counter
	reconcileWrites prometheus.Counter
	configPushes    prometheus.Counter
	kongRefused     prometheus.Counter
	listingsRefused prometheus.Counter

	requests *prometheus.CounterVec   // method, code
	kongLat  prometheus.Histogram     // one Admin API call
	syncDur  *prometheus.HistogramVec // one apply of the registry to Kong, by result
	state    *state                   // gauges read at scrape time
}

// latencyBuckets: Admin API calls and applies, 1 ms to 10 s.
var latencyBuckets = []float64{0.001, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10}

// NewMetrics returns zeroed metrics in their own registry.
func NewMetrics() *Metrics {
	reg := prometheus.NewRegistry()
	f := func(name, help string) prometheus.Counter {
		c := prometheus.NewCounter(prometheus.CounterOpts{Name: name, Help: help})
		reg.MustRegister(c)
		return c
	}
	m := &Metrics{
		reg:             reg,
		registrations:   f("sr_registrations_total", "Routes registered (new registrations only)."),
		deregistrations: f("sr_deregistrations_total", "Routes deregistered."),
		conflicts:       f("sr_registration_conflicts_total", "Registrations refused with 409."),
		rateLimited:     f("sr_rate_limited_total", "Registry API requests refused by the per-client rate limit."),
		unauthorized:    f("sr_unauthorized_total", "Registry API requests refused for a missing or wrong API key."),
		reconcileRuns:   f("sr_reconcile_runs_total", "Kong reconciles run by this replica."),
		reconcileErrors: f("sr_reconcile_errors_total", "Kong reconciles that failed."),
		reconcileWrites: f("sr_reconcile_drift_fixed_total", "Kong entities created, updated or deleted by reconciles (DB mode)."),
		configPushes:    f("sr_kong_config_pushes_total", "DB-less POST /config pushes."),
		kongRefused:     f("sr_kong_refused_services_total", "Entities Kong refused in applies (the rest was applied without them)."),
		listingsRefused: f("sr_listings_refused_total", "Full listings (GET /routes, /v1/services) refused with 503: too many at once."),
		requests: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "sr_http_requests_total", Help: "Registry API requests by method and status.",
		}, []string{"method", "code"}),
		kongLat: prometheus.NewHistogram(prometheus.HistogramOpts{
			Name: "sr_kong_request_duration_seconds", Help: "Kong Admin API call latency.", Buckets: latencyBuckets,
		}),
		syncDur: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name: "sr_kong_sync_duration_seconds", Help: "Time one apply of the registry to Kong took (reconcile or change-triggered), by result.",
			Buckets: latencyBuckets,
		}, []string{"result"}),
	}
	m.state = newState()
	reg.MustRegister(m.requests, m.kongLat, m.syncDur, m.state,
		collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	// Both results exist from the start, so a rate() over them is 0, not absent.
	m.syncDur.WithLabelValues("ok")
	m.syncDur.WithLabelValues("error")
	return m
}

// methods bounds the method label: anything else a client sends is "other".
var methods = map[string]bool{http.MethodGet: true, http.MethodHead: true, http.MethodPost: true, http.MethodPut: true,
	http.MethodPatch: true, http.MethodDelete: true, http.MethodOptions: true}

func (m *Metrics) request(method string, code int) {
	if !methods[method] {
		method = "other"
	}
	m.requests.WithLabelValues(method, strconv.Itoa(code)).Inc()
}

// ObserveKong records one Kong Admin API call's latency
// (kongsync.Options.ObserveLatency).
func (m *Metrics) ObserveKong(d time.Duration) { m.kongLat.Observe(d.Seconds()) }

// ObserveApply records one Kong sync run and how long it took
// (kongsync.ReconcilerOptions.OnApply).
func (m *Metrics) ObserveApply(r kongsync.Result, err error) {
	m.reconcileRuns.Inc()
	result := "ok"
	if err != nil {
		m.reconcileErrors.Inc()
		result = "error"
	}
	m.syncDur.WithLabelValues(result).Observe(r.Duration.Seconds())
	if r.Mode == kongsync.ModeDB {
		m.reconcileWrites.Add(float64(r.Changes()))
	}
	if r.Pushed {
		m.configPushes.Inc()
	}
	m.kongRefused.Add(float64(len(r.Refused)))
}

// gauges are read from the store and the reconciler at scrape time.
type gauges struct {
	routes  int64
	pending int64
	leader  bool
	up      bool
	streams int
}

// state exposes the gauges, read once per scrape from the server that
// serves the metrics (none yet: zeros).
type state struct {
	mu                                   sync.Mutex
	read                                 func(context.Context) gauges
	routes, pending, leader, up, streams *prometheus.Desc
}

func newState() *state {
	return &state{
		read:    func(context.Context) gauges { return gauges{} },
		routes:  prometheus.NewDesc("sr_registered_routes", "Routes in the registry (the last count read while the store is down).", nil, nil),
		pending: prometheus.NewDesc("sr_pending_changes", "Registry changes not yet applied to Kong (the sync queue depth).", nil, nil),
		leader:  prometheus.NewDesc("sr_kong_sync_leader", "1 when this replica holds the Kong sync lease.", nil, nil),
		up:      prometheus.NewDesc("sr_store_up", "1 when the registry store answered.", nil, nil),
		streams: prometheus.NewDesc("sr_event_streams", "Open /v1/events streams on this replica.", nil, nil),
	}
}

// watchState makes the gauges read from read (the API server's store and
// sync) at each scrape.
func (m *Metrics) watchState(read func(context.Context) gauges) {
	m.state.mu.Lock()
	m.state.read = read
	m.state.mu.Unlock()
}

func (s *state) Describe(ch chan<- *prometheus.Desc) {
	ch <- s.routes
	ch <- s.pending
	ch <- s.leader
	ch <- s.up
	ch <- s.streams
}

func (s *state) Collect(ch chan<- prometheus.Metric) {
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
	defer cancel()
	s.mu.Lock()
	read := s.read
	s.mu.Unlock()
	g := read(ctx)
	b := func(v bool) float64 {
		if v {
			return 1
		}
		return 0
	}
	if g.routes >= 0 { // -1: the store is down and no count was ever read
		ch <- prometheus.MustNewConstMetric(s.routes, prometheus.GaugeValue, float64(g.routes))
	}
	ch <- prometheus.MustNewConstMetric(s.pending, prometheus.GaugeValue, float64(g.pending))
	ch <- prometheus.MustNewConstMetric(s.leader, prometheus.GaugeValue, b(g.leader))
	ch <- prometheus.MustNewConstMetric(s.up, prometheus.GaugeValue, b(g.up))
	ch <- prometheus.MustNewConstMetric(s.streams, prometheus.GaugeValue, float64(g.streams))
}

// Handler serves the exposition; when a collector fails, the rest is
// still served.
func (m *Metrics) Handler() http.Handler {
	return promhttp.HandlerFor(m.reg, promhttp.HandlerOpts{ErrorHandling: promhttp.ContinueOnError})
}

// Server is the optional metrics-only listener (--metrics-listen): GET
// /metrics without an API key, so Prometheus needs no secret, and nothing
// else of the API on that port.
func (m *Metrics) Server() *http.Server {
	mux := http.NewServeMux()
	mux.Handle("GET /metrics", m.Handler())
	return &http.Server{Handler: mux, ReadHeaderTimeout: 5 * time.Second, ReadTimeout: 10 * time.Second,
		WriteTimeout: 30 * time.Second, IdleTimeout: 2 * time.Minute}
}
