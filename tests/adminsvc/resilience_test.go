package adminsvc_test

import (
	"fmt"
	"math/rand/v2"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/kong-service-registry/service-registry/internal/redistest"
)

// TestRestartKeepsAcknowledgedRoutes: every route acknowledged with 200 —
// including ones registered while Kong was down — survives a hard kill of
// adminsvc and Redis (appendonly, fsync always) and ends up in Kong.
func TestRestartKeepsAcknowledgedRoutes(t *testing.T) {
	rs := redistest.Start(t, redistest.Options{AppendFsync: "always"})
	k := startKong(t, false)
	// A stable replica name lets the restarted process take its own Kong
	// sync lease back at once instead of waiting for it to expire.
	s := startSvc(t, svcOpts{Redis: rs.URL(), Kong: k.URL(), Env: map[string]string{"SR_REPLICA_ID": "adminsvc-0"}})
	register := func(from, to int) {
		var wg sync.WaitGroup
		for i := from; i < to; i++ {
			wg.Add(1)
			go func() {
				defer wg.Done()
				r := s.do("POST", "/register", fmt.Sprintf(`{"host":"r%d.example.com","path":"/p","backend":"http://b%d:80"}`, i, i))
				if r.Status != 200 {
					t.Errorf("register %d: %d %s", i, r.Status, r.Raw)
				}
			}()
		}
		wg.Wait()
	}
	register(0, 100)
	waitAgree(t, s, k, 20*time.Second)
	k.Stop()
	register(100, 150) // acknowledged, not yet in Kong
	s.Kill()
	rs.Kill()

	rs.Restart()
	if err := k.Restart(); err != nil {
		t.Fatal(err)
	}
	s.Restart() // the killed process is gone: start it again
	r := s.do("GET", "/routes", "")
	if r.Body["total"] != 150.0 {
		t.Fatalf("after restart: %v routes", r.Body["total"])
	}
	waitAgree(t, s, k, 20*time.Second)
}

// TestReplicasConcurrentRegisterDeregister: 4 adminsvc replicas, 1 000
// concurrent register/deregister calls over 60 overlapping routes; every
// call answered per contract, and at the end the registry and Kong agree
// with no duplicate entities.
func TestReplicasConcurrentRegisterDeregister(t *testing.T) {
	rs := redistest.Start(t, redistest.Options{})
	k := startKong(t, false)
	var reps []*svc
	for i := 0; i < 4; i++ {
		reps = append(reps, startSvc(t, svcOpts{Redis: rs.URL(), Kong: k.URL(),
			Env: map[string]string{"SR_REPLICA_ID": fmt.Sprintf("replica-%d", i)}}))
	}
	const calls, routes, workers = 1000, 60, 24
	var next atomic.Int64
	var bad atomic.Int64
	codes := sync.Map{}
	var wg sync.WaitGroup
	start := time.Now()
	for w := 0; w < workers; w++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			rng := rand.New(rand.NewPCG(uint64(w), 7))
			for next.Add(1) <= calls {
				s := reps[rng.IntN(len(reps))]
				i := rng.IntN(routes)
				var r resp
				if rng.IntN(3) == 0 {
					r = s.do("POST", "/deregister", fmt.Sprintf(`{"host":"c%d.example.com","path":"/x"}`, i))
					if r.Status != 200 && r.Status != 404 {
						bad.Add(1)
						t.Errorf("deregister: %d %s", r.Status, r.Raw)
					}
				} else {
					// Two possible backends: the same one is idempotent (200),
					// the other a conflict (409) while the route exists.
					r = s.do("POST", "/register", fmt.Sprintf(`{"host":"c%d.example.com","path":"/x","backend":"http://b%d:80"}`, i, rng.IntN(2)))
					if r.Status != 200 && r.Status != 409 {
						bad.Add(1)
						t.Errorf("register: %d %s", r.Status, r.Raw)
					}
				}
				v, _ := codes.LoadOrStore(r.Status, new(atomic.Int64))
				v.(*atomic.Int64).Add(1)
			}
		}()
	}
	wg.Wait()
	took := time.Since(start)
	summary := map[int]int64{}
	codes.Range(func(k, v any) bool { summary[k.(int)] = v.(*atomic.Int64).Load(); return true })
	t.Logf("%d calls on 4 replicas in %s: %v", calls, took.Round(time.Millisecond), summary)
	if bad.Load() > 0 {
		t.Fatalf("%d calls answered outside the contract", bad.Load())
	}
	// All replicas see the same registry; Kong converges to it.
	first := reps[0].do("GET", "/routes", "").Raw
	for _, s := range reps[1:] {
		if got := s.do("GET", "/routes", "").Raw; got != first {
			t.Fatal("replicas disagree on /routes")
		}
	}
	waitAgree(t, reps[0], k, 30*time.Second)
	leaders := 0
	for _, s := range reps {
		if h := s.do("GET", "/health", ""); h.Body["kong"].(map[string]any)["leader"] == true {
			leaders++
		}
	}
	if leaders != 1 {
		t.Fatalf("%d replicas hold the kong sync lease", leaders)
	}
}
