package faults

import (
	"sync/atomic"
	"testing"
	"time"

	"github.com/kong-service-registry/service-registry/internal/redistest"
)

// aofRun registers under load, SIGKILLs Redis mid-load, restarts it from its
// AOF and returns the acknowledged registrations missing afterwards.
func aofRun(t *testing.T, fsync string) (res *loadResult, lost []string) {
	rs := redistest.Start(t, redistest.Options{AppendFsync: fsync})
	a := StartAdminsvc(t, AdminOptions{RedisURL: rs.URL()})
	api := newAPI(a.URL)
	waitHealthy(t, api, 10*time.Second)

	stop := make(chan struct{})
	var faultEnd atomic.Int64
	done := make(chan *loadResult)
	go func() { done <- registerLoad(api, 4, stop, &faultEnd, 5000) }()

	// Let acknowledgements accumulate, then kill Redis without warning.
	waitUntil(t, 20*time.Second, "first registrations", func() bool { return len(api.routes(t)) >= 40 })
	fdsBefore := openFDs(a.PID())
	rs.Kill()
	time.Sleep(1500 * time.Millisecond) // the outage: longer than go-redis retries, so requests fail with 503
	rs.Restart()                        // same port and dir: reloads the AOF
	faultEnd.Store(time.Now().UnixNano())
	// Recovery without restarting adminsvc: registrations succeed again.
	waitHealthy(t, api, 15*time.Second)
	time.Sleep(500 * time.Millisecond)
	close(stop)
	res = <-done

	have := api.routes(t)
	for _, k := range res.ackedKeys {
		if !have[k] {
			lost = append(lost, k)
		}
	}
	if res.hung > 0 {
		t.Errorf("%d requests hung past %v", res.hung, api.bound)
	}
	// Connections to the dead server are closed, not piled up: allow for
	// the pool refilling (a leak grows with the hundreds of failed calls).
	if after := openFDs(a.PID()); after > fdsBefore+30 {
		t.Errorf("adminsvc fds grew from %d to %d across the Redis restart", fdsBefore, after)
	}
	if len(res.recoveries) == 0 {
		t.Errorf("no registration succeeded after Redis came back")
	}
	t.Logf("RESULT fault=redis-sigkill fsync=%s sent=%d acked=%d failed=%d hung=%d lost=%d recovery_p99=%v",
		fsync, res.sent, res.acked, res.failed, res.hung, len(lost), p99(res.recoveries))
	return res, lost
}

// With appendfsync always, Redis fsyncs before it answers: no registration
// adminsvc acknowledged may be missing after a SIGKILL and restart.
func TestRedisKillAOFAlwaysLosesNothing(t *testing.T) {
	_, lost := aofRun(t, "always")
	if len(lost) > 0 {
		t.Fatalf("%d acknowledged registrations lost with appendfsync always: %v", len(lost), lost)
	}
}

// With everysec the test measures (and logs) the loss instead of
// forbidding it. Measured: 0. Redis write()s the AOF buffer before it
// replies (beforeSleep), so a killed process leaves every acknowledged
// write in the kernel's page cache; everysec's one-second window is lost
// only when the machine itself goes down before the fsync, which a process
// kill cannot reproduce (RELIABILITY.md). The bound below would catch a
// loss that is not about fsync timing at all.
func TestRedisKillAOFEverysecLossWindow(t *testing.T) {
	res, lost := aofRun(t, "everysec")
	// At most what the 4 workers acknowledged in ~2 s (everysec's worst
	// case); a larger loss would mean something other than fsync timing.
	if int64(len(lost)) > res.acked/2+200 {
		t.Fatalf("lost %d of %d acknowledged registrations: more than everysec's window", len(lost), res.acked)
	}
}

// Redis paused (SIGSTOP: connections open, nothing answers): requests end
// with 503 within their bound instead of hanging, and service comes back
// on SIGCONT without restarting adminsvc.
func TestRedisPausedAPIAnswers503ThenRecovers(t *testing.T) {
	rs := redistest.Start(t, redistest.Options{AppendFsync: "always"})
	a := StartAdminsvc(t, AdminOptions{RedisURL: rs.URL()})
	api := newAPI(a.URL)
	if r := api.register("p.test", "/before", "http://10.0.0.1:80"); r.Status != 200 {
		t.Fatalf("register: %d %s", r.Status, r.Raw)
	}
	rs.Pause()
	paused := true
	defer func() {
		if paused {
			rs.Resume()
		}
	}()
	r := api.register("p.test", "/during", "http://10.0.0.1:80")
	if r.Err != nil || r.Status != 503 {
		t.Fatalf("register with Redis paused: %d %v %s (took %v)", r.Status, r.Err, r.Raw, r.Took)
	}
	if r.Took > 5*time.Second {
		t.Fatalf("503 took %v: longer than the store timeout", r.Took)
	}
	if h := api.do("GET", "/health", nil); h.Status != 503 || h.Took > 5*time.Second {
		t.Fatalf("health with Redis paused: %d after %v", h.Status, h.Took)
	}
	rs.Resume()
	paused = false
	t0 := time.Now()
	waitUntil(t, 10*time.Second, "registration after resume", func() bool {
		return api.register("p.test", "/after", "http://10.0.0.1:80").Status == 200
	})
	t.Logf("RESULT fault=redis-pause recovery=%v", time.Since(t0))
	have := api.routes(t)
	if !have["p.test/before"] || !have["p.test/after"] {
		t.Fatalf("routes after pause: %v", have)
	}
}

// Slow Redis (latency through the proxy): a little latency only slows
// registrations down; latency past the store timeout turns them into 503s
// within the bound (never a hang), and they succeed again once it is gone.
func TestRedisSlowAPIBounded(t *testing.T) {
	rs := redistest.Start(t, redistest.Options{AppendFsync: "always"})
	px := NewProxy(t, rs.Addr)
	a := StartAdminsvc(t, AdminOptions{RedisURL: "redis://" + px.Addr + "/0"})
	api := newAPI(a.URL)
	waitHealthy(t, api, 10*time.Second)

	px.SetLatency(50 * time.Millisecond)
	if r := api.register("slow.test", "/a", "http://10.0.0.1:80"); r.Status != 200 {
		t.Fatalf("with 50 ms Redis latency: %d %v %s", r.Status, r.Err, r.Raw)
	}
	px.SetLatency(5 * time.Second)
	r := api.register("slow.test", "/b", "http://10.0.0.1:80")
	if r.Err != nil || r.Status != 503 || r.Took > 6*time.Second {
		t.Fatalf("with 5 s Redis latency: %d %v after %v (want 503 within the store timeout)", r.Status, r.Err, r.Took)
	}
	took := r.Took
	px.Heal()
	px.Reset() // drop connections still carrying delayed bytes
	t0 := time.Now()
	waitUntil(t, 15*time.Second, "registrations after the latency is gone", func() bool {
		return api.register("slow.test", "/c", "http://10.0.0.1:80").Status == 200
	})
	t.Logf("RESULT fault=redis-latency-5s answered=503 after=%v recovery=%v", took, time.Since(t0))
	if have := api.routes(t); !have["slow.test/a"] || !have["slow.test/c"] {
		t.Fatalf("routes: %v", have)
	}
}
