package main

import (
	"sync"
	"sync/atomic"

	"github.com/kong-service-registry/service-registry/internal/ratelimit"
)

// The plugin's own metrics (issue 15). The request path only adds to
// atomic counters it already holds a pointer to (a Config caches its
// service's counters, a rate guard its plugin's): no lock, no allocation,
// no label hashing. Everything else (labels, aggregation, breaker and
// discovery state) is read when Prometheus scrapes (metricsexport.go), so
// an idle scraper or none costs requests nothing.

// outcome is how the access phase ended for one request.
type outcome uint8

const (
	outRouted      outcome = iota // set_target to a registry instance
	outPassed                     // registry = kong: Kong's upstream picks
	outRateLimited                // answered by the rate limit (429, or 500 fail-closed)
	outNoInstance                 // 503: no snapshot or no usable instance
	outMaintenance                // 503: the service is in maintenance
	outBreakerOpen                // error_code: every instance's breaker is open
	outError                      // 500: config refused or registry service unknown
	outNoRoute                    // 404: the fast path knows no route for the request
	numOutcomes
)

var outcomeNames = [numOutcomes]string{"routed", "passed", "rate_limited", "no_instance", "maintenance", "breaker_open", "error", "no_route"}

// maxLabelValues bounds each label's distinct values (services, plugin
// ids): both come from Kong's configuration, never from a request, but a
// config generator gone wrong must not blow up the scrape. The rest is
// counted under "_other".
const maxLabelValues = 1000

// serviceStats are the request counters of one service label.
type serviceStats struct {
	name string
	n    [numOutcomes]atomic.Int64
}

// Rate limit results and the sources the limiter reports.
const (
	rateAdmitted = iota
	rateDenied
	rateError
	numRateResults
	numRateSources = 4 // ratelimit.SourceRedis .. SourceLease
)

var rateResultNames = [numRateResults]string{"admitted", "denied", "error"}

// rateStats are the rate-limit decisions of one plugin entity.
type rateStats struct {
	pluginID string
	n        [numRateResults][numRateSources]atomic.Int64
}

func (s *rateStats) add(result int, src ratelimit.Source) {
	if int(src) >= numRateSources {
		src = ratelimit.SourceRedis
	}
	s.n[result][src].Add(1)
}

// PDK calls the handlers make, by method (kongapi.go counts them).
type pdkCall uint8

const (
	callSetTarget pdkCall = iota
	callSetUpstreamHost
	callExit
	callSetHeaders
	callForwardedIP
	callConsumer
	callRequestHeader
	callSerialize
	callRouterService
	callRouterRoute
	callRequestPath
	callSetPath
	callSetScheme
	callNginxVar
	callSetShared
	callGetShared
	numPDKCalls
)

var pdkCallNames = [numPDKCalls]string{
	"kong.service.set_target", "kong.service.request.set_header", "kong.response.exit",
	"kong.response.set_headers", "kong.client.get_forwarded_ip", "kong.client.get_consumer",
	"kong.request.get_header", "kong.log.serialize", "kong.router.get_service", "kong.router.get_route",
	"kong.request.get_path", "kong.service.request.set_path", "kong.service.request.set_scheme",
	"kong.nginx.get_var", "kong.ctx.shared.set", "kong.ctx.shared.get",
}

// pluginMetrics is the process's counters (one, in globals.go).
type pluginMetrics struct {
	mu       sync.Mutex // guards adding label values
	services sync.Map   // label → *serviceStats
	nSvc     int
	rates    sync.Map // plugin id → *rateStats
	nRate    int
	pdk      [numPDKCalls]atomic.Int64
}

// service returns the counters of a service label.
func (m *pluginMetrics) service(name string) *serviceStats {
	return bounded(&m.mu, &m.services, &m.nSvc, name, func(name string) *serviceStats {
		return &serviceStats{name: name}
	})
}

// rate returns the rate-limit counters of a plugin entity.
func (m *pluginMetrics) rate(pluginID string) *rateStats {
	return bounded(&m.mu, &m.rates, &m.nRate, pluginID, func(id string) *rateStats {
		return &rateStats{pluginID: id}
	})
}

// bounded returns the counters of label value key in vals, made by mk on
// first use under mu; past maxLabelValues values (counted in n) new ones
// share "_other", so the series stay bounded.
func bounded[T any](mu *sync.Mutex, vals *sync.Map, n *int, key string, mk func(string) *T) *T {
	if v, ok := vals.Load(key); ok {
		return v.(*T)
	}
	mu.Lock()
	defer mu.Unlock()
	if v, ok := vals.Load(key); ok {
		return v.(*T)
	}
	if *n >= maxLabelValues {
		key = "_other"
		if v, ok := vals.Load(key); ok {
			return v.(*T)
		}
	}
	s := mk(key)
	vals.Store(key, s)
	*n++
	return s
}

// countRequest adds one request to its service's counters. The service
// label is the registry service when the request got that far, else what
// the config names without a PDK call (service, the resolved name, or
// Kong's service_id); "" for a global plugin that stopped earlier.
func (c *Config) countRequest(name string, o outcome) {
	if name == "" {
		if name = c.knownServiceName(); name == "" {
			name = c.serviceID
		}
	}
	s := c.stats.Load()
	if s == nil || s.name != name {
		s = metrics.service(name)
		c.stats.Store(s)
	}
	s.n[o].Add(1)
}
