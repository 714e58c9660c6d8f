package e2e

import (
	"fmt"
	"net/http"
	"regexp"
	"strings"
	"testing"
	"time"

	dto "github.com/prometheus/client_model/go"
	"github.com/prometheus/common/expfmt"
	"github.com/prometheus/common/model"
)

// scrape reads the plugin's /metrics (issue 15): families by name.
func scrape(t *testing.T, addr string) map[string]*dto.MetricFamily {
	t.Helper()
	resp, err := http.Get("http://" + addr + "/metrics")
	if err != nil {
		t.Fatalf("scrape: %v", err)
	}
	defer resp.Body.Close()
	p := expfmt.NewTextParser(model.LegacyValidation)
	fams, err := p.TextToMetricFamilies(resp.Body)
	if err != nil || resp.StatusCode != 200 {
		t.Fatalf("scrape: %d %v", resp.StatusCode, err)
	}
	return fams
}

// value sums the samples of a family whose labels include want.
func value(fams map[string]*dto.MetricFamily, name string, want map[string]string) float64 {
	f := fams[name]
	if f == nil {
		return -1
	}
	sum := 0.0
	for _, m := range f.GetMetric() {
		ok := true
		for k, v := range want {
			found := false
			for _, l := range m.GetLabel() {
				if l.GetName() == k && l.GetValue() == v {
					found = true
				}
			}
			ok = ok && found
		}
		if !ok {
			continue
		}
		switch {
		case m.Counter != nil:
			sum += m.GetCounter().GetValue()
		case m.Gauge != nil:
			sum += m.GetGauge().GetValue()
		case m.Histogram != nil:
			sum += float64(m.GetHistogram().GetSampleCount())
		}
	}
	return sum
}

var metricsAddr = regexp.MustCompile(`metrics listening" addr=(\S+)`)

// The plugin's metrics against the traffic sent, to the request: requests
// per service and outcome, rate-limit decisions per plugin entity, PDK
// calls per method (checked against the harness's own count of the calls
// it answered), breaker state changes and open instances, snapshot age,
// change feed, Redis latency. The plugin server runs with
// SR_PLUGIN_METRICS_LISTEN, as a deployment sets it.
func TestPluginMetricsMatchTraffic(t *testing.T) {
	t.Setenv("SR_PLUGIN_METRICS_LISTEN", "127.0.0.1:0")
	e := newEnv(t, envOptions{instances: map[string]int{"a": 1}})
	waitFor(t, 10*time.Second, "metrics listener", func() bool { return metricsAddr.MatchString(e.kong.Logs()) })
	addr := metricsAddr.FindStringSubmatch(e.kong.Logs())[1]

	// Phase 1: rate limit, by IP: 1 per minute with burst 4 admits 5.
	cfg := guardsConfig(e, map[string]any{
		"rate_limit": map[string]any{"enabled": true, "requests_per_min": 1, "burst": 4, "limit_by": "ip"},
	})
	if err := e.kong.UpdatePlugin(e.pid, cfg); err != nil {
		t.Fatal(err)
	}
	if _, st := e.load(12, 2, "/orders"); st[200] != 5 || st[429] != 7 {
		t.Fatalf("rate limit statuses %v", st)
	}
	// Phase 2: breaker, 2 failures open the only instance; the third
	// request finds every instance open.
	cfg = guardsConfig(e, map[string]any{"circuit_breaker": map[string]any{"enabled": true, "failure_threshold": 2}})
	if err := e.kong.UpdatePlugin(e.pid, cfg); err != nil {
		t.Fatal(err)
	}
	e.bes["a"].status.Store(500)
	if _, st := e.load(2, 1, "/orders"); st[500] != 2 {
		t.Fatalf("failing instance statuses %v", st)
	}
	if err := e.kong.WaitIdle(e.ctx()); err != nil { // log phases recorded
		t.Fatal(err)
	}
	if _, st := e.load(1, 1, "/orders"); st[503] != 1 {
		t.Fatalf("open breaker statuses %v", st)
	}
	reqs, err := e.kong.WaitRequests(e.ctx(), 15)
	if err != nil {
		t.Fatal(err)
	}
	if err := e.kong.WaitIdle(e.ctx()); err != nil {
		t.Fatal(err)
	}

	fams := scrape(t, addr)
	check := func(name string, labels map[string]string, want float64) {
		t.Helper()
		if got := value(fams, name, labels); got != want {
			t.Errorf("%s%v = %v, want %v", name, labels, got, want)
		}
	}
	svc := func(o string) map[string]string { return map[string]string{"service": "orders", "outcome": o} }
	check("service_registry_requests_total", svc("routed"), 7)
	check("service_registry_requests_total", svc("rate_limited"), 7)
	check("service_registry_requests_total", svc("breaker_open"), 1)
	check("service_registry_requests_total", svc("no_instance"), 0)
	check("service_registry_requests_total", map[string]string{"service": "orders"}, 15)
	rl := func(r string) map[string]string { return map[string]string{"plugin_id": e.pid, "result": r} }
	check("service_registry_rate_limit_requests_total", rl("admitted"), 5)
	check("service_registry_rate_limit_requests_total", rl("denied"), 7)
	check("service_registry_rate_limit_requests_total", rl("error"), 0)
	check("service_registry_breaker_state_changes_total", map[string]string{"scope": "orders", "state": "open"}, 1)
	check("service_registry_breaker_instances", map[string]string{"scope": "orders", "state": "open"}, 1)
	check("service_registry_change_feed_up", nil, 1)

	// PDK calls: the plugin's count is the harness's, method by method.
	harnessCalls := map[string]int{}
	for _, r := range reqs {
		for m, n := range r.Calls {
			harnessCalls[m] += n
		}
	}
	total := 0
	for _, m := range fams["service_registry_pdk_calls_total"].GetMetric() {
		method := m.GetLabel()[0].GetValue()
		if got, want := int(m.GetCounter().GetValue()), harnessCalls[method]; got != want {
			t.Errorf("pdk calls %s: plugin counted %d, the harness answered %d", method, got, want)
		}
		total += int(m.GetCounter().GetValue())
	}
	if total == 0 || harnessCalls["kong.service.set_target"] != 7 || harnessCalls["kong.log.serialize"] != 3 {
		t.Errorf("pdk calls: %d counted, harness %v", total, harnessCalls)
	}
	if age := value(fams, "service_registry_snapshot_age_seconds", map[string]string{"service": "orders"}); age < 0 || age > 60 {
		t.Errorf("snapshot age %v", age)
	}
	if n := value(fams, "service_registry_redis_command_duration_seconds", map[string]string{"client": "background"}); n < 1 {
		t.Errorf("redis commands timed (background): %v", n)
	}
	// Bounded labels: nothing from the request (the client IP was the
	// rate limit's identity).
	for name, f := range fams {
		if strings.HasPrefix(name, "service_registry_") && strings.Contains(f.String(), "127.0.0.1\"") && !strings.Contains(name, "redis") && !strings.Contains(name, "change_feed") && !strings.Contains(name, "snapshot_loads") {
			t.Errorf("%s carries an address label: %s", name, f.String())
		}
	}
	if t.Failed() {
		t.Log(fmt.Sprint(harnessCalls))
	}
}
