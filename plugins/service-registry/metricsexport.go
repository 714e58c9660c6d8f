package main

import (
	"context"
	"errors"
	"net"
	"net/http"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"
	"github.com/redis/go-redis/v9"
)

// Metric names: the service_registry_ namespace (the plugin is not Kong:
// Kong's own prometheus plugin owns kong_*), Prometheus' conventions
// (_total counters, _seconds, base units), Kong's label names where they
// mean the same (service). Labels come from Kong's configuration only
// (service, plugin id, breaker scope, Redis endpoint), never from a
// request: no client IPs, no paths, no instance addresses.
var (
	descRequests = prometheus.NewDesc("service_registry_requests_total",
		"Requests the plugin's access phase handled, by service and outcome (routed, passed to Kong's upstream, rate_limited, no_instance, maintenance, breaker_open, error, no_route: the fast path knew no route).",
		[]string{"service", "outcome"}, nil)
	descRate = prometheus.NewDesc("service_registry_rate_limit_requests_total",
		"Rate-limit decisions by plugin entity, result (admitted, denied, error) and source (redis, lease, cache, fail-open).",
		[]string{"plugin_id", "result", "source"}, nil)
	descPDK = prometheus.NewDesc("service_registry_pdk_calls_total",
		"PDK calls the plugin's handlers made (one socket round trip each), by method.",
		[]string{"method"}, nil)
	descBreakerChanges = prometheus.NewDesc("service_registry_breaker_state_changes_total",
		"Circuit-breaker state changes on this node (local or learned from the cluster), by breaker scope (the registry service) and state entered.",
		[]string{"scope", "state"}, nil)
	descBreakerInstances = prometheus.NewDesc("service_registry_breaker_instances",
		"Instances whose breaker is open or half-open now, by breaker scope and state.",
		[]string{"scope", "state"}, nil)
	descSnapshotAge = prometheus.NewDesc("service_registry_snapshot_age_seconds",
		"Time since each cached registry snapshot was loaded or confirmed current by Redis.",
		[]string{"service"}, nil)
	descFeedUp = prometheus.NewDesc("service_registry_change_feed_up",
		"1 while the registry's Redis is reachable (change feed live), 0 while snapshots are served stale.",
		[]string{"redis"}, nil)
	descFeedChanges = prometheus.NewDesc("service_registry_change_feed_messages_total",
		"Change-feed messages received.", []string{"redis"}, nil)
	descFeedSubs = prometheus.NewDesc("service_registry_change_feed_subscriptions_total",
		"Change-feed subscriptions made (more than one: the feed was lost and resubscribed).", []string{"redis"}, nil)
	descLoads = prometheus.NewDesc("service_registry_snapshot_loads_total",
		"Snapshots built from Redis.", []string{"redis"}, nil)
	descFastRoutes = prometheus.NewDesc("service_registry_fast_path_routes",
		"Routes in the fast path's route table (0 until a fast_path config served a request).", []string{"redis"}, nil)
	descFastLoads = prometheus.NewDesc("service_registry_fast_path_loads_total",
		"Full loads of the fast path's route table (the first, then one per change-feed resubscription).", []string{"redis"}, nil)
	descInfo = prometheus.NewDesc("service_registry_plugin_info",
		"The plugin server's version (always 1).", []string{"version"}, nil)

	// redisSeconds and redisErrors are updated by a go-redis hook on every
	// command (Redis is the cost there, not the histogram).
	redisSeconds = prometheus.NewHistogramVec(prometheus.HistogramOpts{
		Name:    "service_registry_redis_command_duration_seconds",
		Help:    "Redis commands and pipelines, by Redis endpoint and client (request: rate limit and breaker; background: discovery loads and feed).",
		Buckets: []float64{.0001, .00025, .0005, .001, .0025, .005, .01, .025, .05, .1, .25, .5, 1},
	}, []string{"redis", "client"})
	redisErrors = prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "service_registry_redis_errors_total",
		Help: "Redis commands and pipelines that failed (a missing key is not a failure), by Redis endpoint and client.",
	}, []string{"redis", "client"})
)

// collector reads the plugin's counters and state at scrape time.
type collector struct{ version string }

func (collector) Describe(ch chan<- *prometheus.Desc) {
	for _, d := range []*prometheus.Desc{descRequests, descRate, descPDK, descBreakerChanges, descBreakerInstances,
		descSnapshotAge, descFeedUp, descFeedChanges, descFeedSubs, descLoads, descFastRoutes, descFastLoads, descInfo} {
		ch <- d
	}
}

func (c collector) Collect(ch chan<- prometheus.Metric) {
	counter := func(d *prometheus.Desc, v int64, labels ...string) {
		ch <- prometheus.MustNewConstMetric(d, prometheus.CounterValue, float64(v), labels...)
	}
	gauge := func(d *prometheus.Desc, v float64, labels ...string) {
		ch <- prometheus.MustNewConstMetric(d, prometheus.GaugeValue, v, labels...)
	}
	gauge(descInfo, 1, c.version)
	metrics.services.Range(func(_, v any) bool {
		s := v.(*serviceStats)
		for o := range numOutcomes {
			counter(descRequests, s.n[o].Load(), s.name, outcomeNames[o])
		}
		return true
	})
	metrics.rates.Range(func(_, v any) bool {
		s := v.(*rateStats)
		for r := range numRateResults {
			for src := range numRateSources {
				if n := s.n[r][src].Load(); n > 0 {
					counter(descRate, n, s.pluginID, rateResultNames[r], sourceName(src))
				}
			}
		}
		return true
	})
	for i := range numPDKCalls {
		counter(descPDK, metrics.pdk[i].Load(), pdkCallNames[i])
	}
	collectBackends(counter, gauge)
}

func sourceName(src int) string {
	return [numRateSources]string{"redis", "cache", "fail-open", "lease"}[src]
}

// collectBackends reports breaker and discovery state, summed per label
// value: two backends (Redis settings) may share an endpoint or serve a
// service of the same name, and a label set must appear once.
func collectBackends(counter func(*prometheus.Desc, int64, ...string), gauge func(*prometheus.Desc, float64, ...string)) {
	type scopeAgg struct {
		changes        [3]int64
		open, halfOpen int
	}
	type feedAgg struct {
		up                   bool
		changes, subs, loads int64
		fastRoutes           int
		fastLoads            int64
		fast                 bool
	}
	scopes, feeds, ages := map[string]*scopeAgg{}, map[string]*feedAgg{}, map[string]time.Duration{}
	backends.mu.Lock()
	list := make([]*backend, 0, len(backends.m))
	for _, b := range backends.m {
		list = append(list, b)
	}
	backends.mu.Unlock()
	for _, b := range list {
		st := b.cache.Stats()
		f := feeds[b.endpoint]
		if f == nil {
			f = &feedAgg{up: true}
			feeds[b.endpoint] = f
		}
		f.up = f.up && !st.Unavailable
		f.changes += st.Changes
		f.subs += st.Subscribes
		f.loads += st.Loads
		b.cache.Ages(func(svc string, age time.Duration) { ages[svc] = max(ages[svc], age) })
		b.guardMu.Lock()
		if t := b.routes.Load(); t != nil {
			rs := t.Stats()
			f.fast, f.fastRoutes, f.fastLoads = true, f.fastRoutes+rs.Routes, f.fastLoads+rs.FullLoads
		}
		for _, set := range b.breakers {
			bs := set.b.Stats()
			a := scopes[set.scope]
			if a == nil {
				a = &scopeAgg{}
				scopes[set.scope] = a
			}
			for i := range a.changes {
				a.changes[i] += bs.Changes[i]
			}
			a.open += bs.Open
			a.halfOpen += bs.HalfOpen
		}
		b.guardMu.Unlock()
	}
	for scope, a := range scopes {
		for i, state := range []string{"closed", "open", "half_open"} {
			counter(descBreakerChanges, a.changes[i], scope, state)
		}
		gauge(descBreakerInstances, float64(a.open), scope, "open")
		gauge(descBreakerInstances, float64(a.halfOpen), scope, "half_open")
	}
	for ep, f := range feeds {
		up := 0.0
		if f.up {
			up = 1
		}
		gauge(descFeedUp, up, ep)
		counter(descFeedChanges, f.changes, ep)
		counter(descFeedSubs, f.subs, ep)
		counter(descLoads, f.loads, ep)
		if f.fast {
			gauge(descFastRoutes, float64(f.fastRoutes), ep)
			counter(descFastLoads, f.fastLoads, ep)
		}
	}
	for svc, age := range ages {
		gauge(descSnapshotAge, age.Seconds(), svc)
	}
}

// redisHook times every command and pipeline of one client.
type redisHook struct {
	seconds prometheus.Observer
	errs    prometheus.Counter
}

func newRedisHook(endpoint, client string) redisHook {
	return redisHook{seconds: redisSeconds.WithLabelValues(endpoint, client), errs: redisErrors.WithLabelValues(endpoint, client)}
}

func (redisHook) DialHook(next redis.DialHook) redis.DialHook { return next }

func (h redisHook) ProcessHook(next redis.ProcessHook) redis.ProcessHook {
	return func(ctx context.Context, cmd redis.Cmder) error {
		start := time.Now()
		err := next(ctx, cmd)
		h.observe(start, err)
		return err
	}
}

func (h redisHook) ProcessPipelineHook(next redis.ProcessPipelineHook) redis.ProcessPipelineHook {
	return func(ctx context.Context, cmds []redis.Cmder) error {
		start := time.Now()
		err := next(ctx, cmds)
		h.observe(start, err)
		return err
	}
}

func (h redisHook) observe(start time.Time, err error) {
	h.seconds.Observe(time.Since(start).Seconds())
	if err != nil && !errors.Is(err, redis.Nil) {
		h.errs.Inc()
	}
}

// serveMetrics serves /metrics on addr until the process ends. It never
// touches the request path: the registry reads counters when scraped.
func serveMetrics(addr, version string) (net.Addr, error) {
	reg := prometheus.NewRegistry()
	reg.MustRegister(collector{version: version}, redisSeconds, redisErrors,
		collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	mux := http.NewServeMux()
	mux.Handle("/metrics", promhttp.HandlerFor(reg, promhttp.HandlerOpts{ErrorLog: promLogger{}}))
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		return nil, err
	}
	srv := &http.Server{Handler: mux, ReadHeaderTimeout: 5 * time.Second, WriteTimeout: 30 * time.Second}
	go func() {
		if err := srv.Serve(ln); err != nil {
			logger().Error("service-registry: metrics listener stopped", "error", err)
		}
	}()
	return ln.Addr(), nil
}

// promLogger sends client_golang's exposition errors to the plugin log.
type promLogger struct{}

func (promLogger) Println(v ...any) {
	logThrottled("metrics", "service-registry: metrics exposition", "error", v)
}
