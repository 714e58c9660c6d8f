package main

import (
	"fmt"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/kong-service-registry/service-registry/internal/breaker"
)

// tries renders a kong.log.serialize document with the given tries
// (ip:port:code:state, code and state optional), final status and source.
func serializedDoc(status int, source string, tries ...string) string {
	var parts []string
	for _, t := range tries {
		f := strings.Split(t, ":")
		m := fmt.Sprintf(`{"ip":%q,"port":%s,"balancer_start":1,"balancer_latency":0`, f[0], f[1])
		if len(f) > 2 && f[2] != "" {
			m += `,"code":` + f[2]
		}
		if len(f) > 3 {
			m += fmt.Sprintf(`,"state":%q`, f[3])
		}
		parts = append(parts, m+"}")
	}
	doc := fmt.Sprintf(`{"request":{"uri":"/x","headers":{"host":"h"}},"response":{"status":%d,"headers":{}},"source":%q,"upstream_uri":"/x"`, status, source)
	if len(parts) > 0 {
		doc += `,"tries":[` + strings.Join(parts, ",") + `]`
	}
	return doc + "}"
}

func breakerConfig(t *testing.T, fx *fixture, svc, extra string) *Config {
	return fx.config(t, `,"service":"`+svc+`","circuit_breaker":{"enabled":true,"failure_threshold":2,"timeout_ms":5000`+extra+`}`)
}

// The log phase records the outcome of the try actually made; open
// instances are skipped; when all are open: error_code + Retry-After.
func TestBreakerSkipsOpenAndAnswers503(t *testing.T) {
	fx := newFixture(t)
	fx.put(t, "br", "a", "10.0.0.1:80", 1)
	fx.put(t, "br", "b", "10.0.0.2:80", 1)
	c := breakerConfig(t, fx, "br", `,"error_code":599`)
	fail := func(addr string) {
		ip, port, _ := strings.Cut(addr, ":")
		k := &fakeKong{serialized: serializedDoc(500, "upstream", ip+":"+port)}
		c.log(k)
		if !slices.Equal(k.calls, []string{"kong.log.serialize"}) {
			t.Fatalf("log calls %v", k.calls)
		}
	}
	b := c.compile().breaker.set
	fail("10.0.0.1:80")
	fail("10.0.0.1:80")
	if st := b.State("10.0.0.1:80"); st != breaker.Open {
		t.Fatalf("a after 2 failures: %v", st)
	}
	for i := 0; i < 10; i++ {
		k := &fakeKong{}
		c.access(k)
		if k.host != "10.0.0.2" || !slices.Equal(k.calls, []string{"kong.service.set_target"}) {
			t.Fatalf("with a open: target %q calls %v", k.host, k.calls)
		}
	}
	fail("10.0.0.2:80")
	fail("10.0.0.2:80")
	k := &fakeKong{}
	c.access(k)
	if k.status != 599 || k.body != `{"message":"circuit breaker open for every instance of service br"}` || k.host != "" {
		t.Fatalf("all open: %d %s", k.status, k.body)
	}
	ra, err := strconv.Atoi(k.exitHeaders["Retry-After"][0])
	if err != nil || ra < 1 || ra > 5 || k.exitHeaders["Content-Type"] == nil {
		t.Fatalf("all open headers %v", k.exitHeaders)
	}
	// A request the plugin answered has no tries: nothing recorded.
	k = &fakeKong{serialized: serializedDoc(599, "kong")}
	c.log(k)
	if len(k.calls) != 1 {
		t.Fatalf("log calls %v", k.calls)
	}
}

// Classification of what kong.log.serialize reports.
func TestBreakerRecordsTries(t *testing.T) {
	fx := newFixture(t)
	fx.put(t, "bt", "a", "10.0.0.1:80", 1)
	c := breakerConfig(t, fx, "bt", `,"failure_statuses":[500]`)
	b := c.compile().breaker.set
	rec := func(doc string) { c.log(&fakeKong{serialized: doc}) }

	// 503 is not a failure status here; successes keep it closed.
	for i := 0; i < 5; i++ {
		rec(serializedDoc(503, "upstream", "10.0.0.1:80"))
		rec(serializedDoc(200, "upstream", "10.0.0.1:80"))
	}
	if b.State("10.0.0.1:80") != breaker.Closed {
		t.Fatal("opened on non-failure statuses")
	}
	// Kong answering 502 itself after the try: connection refused. One
	// failure, then a success resets the count.
	rec(serializedDoc(502, "kong", "10.0.0.1:80"))
	rec(serializedDoc(200, "upstream", "10.0.0.1:80"))
	rec(serializedDoc(502, "kong", "10.0.0.1:80"))
	if b.State("10.0.0.1:80") != breaker.Closed {
		t.Fatal("opened on failures that were not consecutive")
	}
	// A retried request: the earlier failed try counts too (same target).
	rec(serializedDoc(502, "kong", "10.0.0.1:80::failed", "10.0.0.1:80"))
	if b.State("10.0.0.1:80") != breaker.Open {
		t.Fatalf("not open after retries failed: %v", b.State("10.0.0.1:80"))
	}
	// Another instance, only in tries: recorded under ip:port.
	rec(serializedDoc(200, "upstream", "10.0.0.3:81:500:next", "10.0.0.3:81"))
	if b.State("10.0.0.3:81") != breaker.Closed {
		t.Fatal("one failure opened 10.0.0.3:81")
	}
}

// Half-open: after timeout_ms one probe goes to the instance; its success
// closes it.
func TestBreakerHalfOpenProbe(t *testing.T) {
	fx := newFixture(t)
	fx.put(t, "hp", "a", "10.0.0.1:80", 1)
	c := fx.config(t, `,"service":"hp","circuit_breaker":{"enabled":true,"failure_threshold":1,"timeout_ms":50}`)
	b := c.compile().breaker.set
	c.log(&fakeKong{serialized: serializedDoc(500, "upstream", "10.0.0.1:80")})
	k := &fakeKong{}
	c.access(k)
	if k.status != 503 || k.exitHeaders["Retry-After"][0] != "1" {
		t.Fatalf("open: %d %v", k.status, k.exitHeaders)
	}
	// Wait for the probe to be admitted (open period over, token granted
	// by the cluster sync).
	deadline := time.Now().Add(5 * time.Second)
	for {
		k = &fakeKong{}
		c.access(k)
		if k.host == "10.0.0.1" {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("no probe admitted: %d %s, state %v", k.status, k.body, b.State("10.0.0.1:80"))
		}
		time.Sleep(5 * time.Millisecond)
	}
	c.log(&fakeKong{serialized: serializedDoc(200, "upstream", "10.0.0.1:80")})
	if st := b.State("10.0.0.1:80"); st != breaker.Closed {
		t.Fatalf("after a good probe: %v", st)
	}
}

// Acceptance 4 of issue 5 at handler level: discovery + rate limit by IP +
// breaker: access ≤ 3 calls, log 1; rate-limited ≤ 3 in all.
func TestGuardsPDKBudget(t *testing.T) {
	fx := newFixture(t)
	fx.put(t, "bud", "a", "10.0.0.1:80", 1)
	c := fx.config(t, `,"service":"bud","__plugin_id":"p-bud","rate_limit":{"enabled":true,"requests_per_min":5,"burst":4,"per_ip":true},"circuit_breaker":{"enabled":true}`)
	for i := 0; i < 8; i++ {
		k := &fakeKong{ip: "198.51.100.1", serialized: serializedDoc(200, "upstream", "10.0.0.1:80")}
		c.access(k)
		access := len(k.calls)
		if k.status == 429 {
			k.serialized = serializedDoc(429, "kong")
		}
		c.log(k)
		logCalls := len(k.calls) - access
		switch {
		case i < 5 && (k.status != 0 || access > 3 || logCalls != 1 || access+logCalls > 4):
			t.Fatalf("admitted request %d: status %d calls %v", i, k.status, k.calls)
		case i >= 5 && (k.status != 429 || access+logCalls > 3):
			t.Fatalf("limited request %d: status %d calls %v", i, k.status, k.calls)
		}
	}
}

// registry = kong: Kong's balancer picks; the guards still work, the
// breaker only records.
func TestGuardsRegistryKong(t *testing.T) {
	fx := newFixture(t)
	c := decode(t, fmt.Sprintf(`{"registry":"kong","__plugin_id":"p-kong","service_id":"svc-kong","redis":{"port":%d,"timeout_ms":5000},`+
		`"rate_limit":{"enabled":true,"requests_per_min":1,"limit_by":"service","hide_client_headers":true},`+
		`"circuit_breaker":{"enabled":true,"failure_threshold":1}}`, fx.srv.Port))
	k := &fakeKong{}
	c.access(k)
	if len(k.calls) != 0 || k.status != 0 {
		t.Fatalf("pass-through: %d calls %v", k.status, k.calls)
	}
	k = &fakeKong{}
	c.access(k)
	if k.status != 429 {
		t.Fatalf("second request: %d", k.status)
	}
	c.log(&fakeKong{serialized: serializedDoc(500, "upstream", "10.1.1.1:8000")})
	if st := c.compile().breaker.set.State("10.1.1.1:8000"); st != breaker.Open {
		t.Fatalf("kong-picked target not recorded: %v", st)
	}
}

// A client cannot steer the breaker with headers named like serialize's
// top-level keys: only top-level values are read.
func TestBreakerIgnoresLookalikeHeaders(t *testing.T) {
	fx := newFixture(t)
	fx.put(t, "la", "a", "10.0.0.1:80", 1)
	c := breakerConfig(t, fx, "la", `,"failure_statuses":[500]`)
	b := c.compile().breaker.set
	doc := `{"request":{"headers":{"tries":[{"ip":"10.0.0.1","port":80,"code":500,"state":"failed"}],"source":"kong","status":500}},` +
		`"response":{"headers":{"status":"500"},"status":200},"source":"upstream","tries":[{"ip":"10.0.0.1","port":80}]}`
	for i := 0; i < 5; i++ {
		c.log(&fakeKong{serialized: doc})
	}
	if st := b.State("10.0.0.1:80"); st != breaker.Closed {
		t.Fatalf("opened by header contents: %v", st)
	}
}

// An instance registered by host name: Kong tries it under the resolved
// IP; the breaker must count that against the instance the picker knows.
func TestBreakerHostNameInstance(t *testing.T) {
	ips := hostIPs.lookup("localhost")
	if !slices.Contains(ips, "127.0.0.1") {
		t.Skipf("localhost resolves to %v here", ips)
	}
	fx := newFixture(t)
	fx.put(t, "hn", "named", "localhost:8181", 1)
	fx.put(t, "hn", "ip", "10.0.0.2:8181", 1)
	c := breakerConfig(t, fx, "hn", "")
	c.access(&fakeKong{}) // load the snapshot
	for i := 0; i < 2; i++ {
		c.log(&fakeKong{serialized: serializedDoc(502, "kong", "127.0.0.1:8181")})
	}
	b := c.compile().breaker.set
	if st := b.State("localhost:8181"); st != breaker.Open {
		t.Fatalf("named instance: %v (127.0.0.1:8181: %v)", st, b.State("127.0.0.1:8181"))
	}
	for i := 0; i < 6; i++ {
		k := &fakeKong{}
		c.access(k)
		if k.host != "10.0.0.2" {
			t.Fatalf("request %d went to %q with the named instance open", i, k.host)
		}
	}
}

// The default failure_statuses (every 5xx, 100 values) reaches the breaker
// as its nil "500-599" form, which classifies in constant time (~3 ns
// instead of ~36 ns per try for a 100-entry scan); a custom list is kept.
func TestBreakerEvery5xxFastPath(t *testing.T) {
	fx := newFixture(t)
	fx.put(t, "fp", "a", "10.0.0.1:80", 1)
	c := breakerConfig(t, fx, "fp", "")
	st := c.compile().breaker.set.Settings()
	if st.FailureStatuses != nil {
		t.Fatalf("default statuses reach the breaker as a %d-entry list", len(st.FailureStatuses))
	}
	for code, want := range map[int]breaker.Outcome{500: breaker.Failure, 599: breaker.Failure, 200: breaker.Success, 499: breaker.Success} {
		if got := st.Classify(code, false); got != want {
			t.Errorf("Classify(%d) = %v, want %v", code, got, want)
		}
	}
	c = breakerConfig(t, fx, "fp", `,"failure_statuses":[503]`)
	if st := c.compile().breaker.set.Settings(); !slices.Equal(st.FailureStatuses, []int{503}) || st.Classify(500, false) != breaker.Success {
		t.Fatalf("custom list: %v", st.FailureStatuses)
	}
}

// A global plugin (no service in its config, no service_id) learns the
// registry service per request from the router in access; in the log
// phase the name comes from the serialize document it reads anyway, so a
// host-name instance is counted under its registry address there too.
func TestBreakerHostNameInstanceGlobalPlugin(t *testing.T) {
	ips := hostIPs.lookup("localhost")
	if !slices.Contains(ips, "127.0.0.1") {
		t.Skipf("localhost resolves to %v here", ips)
	}
	fx := newFixture(t)
	fx.put(t, "hng", "named", "localhost:8182", 1)
	c := fx.config(t, `,"__plugin_id":"p-global-hn","circuit_breaker":{"enabled":true,"failure_threshold":2,"timeout_ms":5000}`)
	c.access(&fakeKong{svcID: "s-hng", svcName: "hng"}) // load the snapshot
	doc := strings.Replace(serializedDoc(502, "kong", "127.0.0.1:8182"), `"upstream_uri"`, `"service":{"id":"s-hng","name":"hng"},"upstream_uri"`, 1)
	for i := 0; i < 2; i++ {
		c.log(&fakeKong{serialized: doc})
	}
	b := c.compile().breaker.set
	if st := b.State("localhost:8182"); st != breaker.Open {
		t.Fatalf("named instance: %v (127.0.0.1:8182: %v)", st, b.State("127.0.0.1:8182"))
	}
}
