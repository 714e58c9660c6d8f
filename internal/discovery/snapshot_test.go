package discovery

import (
	"fmt"
	"math"
	"sync"
	"testing"
	"time"

	"github.com/kong-service-registry/service-registry/internal/registry"
)

func svcWith(weights ...int) registry.Service {
	s := registry.Service{Name: "s", Version: 1}
	for i, w := range weights {
		s.Instances = append(s.Instances, registry.Instance{ID: fmt.Sprint("i", i), Address: fmt.Sprintf("10.0.%d.%d:%d", i/256, i%256, 8000+i), Weight: w})
	}
	return s
}

var t0 = time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)

func TestWeightedDistribution(t *testing.T) {
	s := NewSnapshot(svcWith(1, 2, 7, 0), true, t0)
	counts := map[string]int{}
	const picks = 10000
	for i := 0; i < picks; i++ {
		tg, ok := s.Pick(t0, nil)
		if !ok {
			t.Fatal("no pick")
		}
		counts[tg.ID]++
	}
	if counts["i3"] != 0 {
		t.Fatalf("weight 0 picked %d times", counts["i3"])
	}
	for id, w := range map[string]float64{"i0": 0.1, "i1": 0.2, "i2": 0.7} {
		got := float64(counts[id]) / picks
		if math.Abs(got-w) > 0.02 {
			t.Errorf("%s: share %.4f, want %.2f ± 0.02", id, got, w)
		}
	}
}

// The schedule must be as smooth as nginx's smooth weighted round-robin:
// over any window of the period, each target's count stays within one
// slot of its ideal share (nginx's SWRR has the same bound).
func TestScheduleSmooth(t *testing.T) {
	for _, ws := range [][]int{{1, 2, 7}, {5, 1, 1}, {3, 3, 3}, {100, 1}, {65535, 1, 30000}} {
		s := NewSnapshot(svcWith(ws...), true, t0)
		total := len(s.schedule)
		for window := 1; window <= total; window++ {
			for start := 0; start < total; start += 1 + total/50 {
				counts := make([]int, len(ws))
				for k := 0; k < window; k++ {
					counts[s.schedule[(start+k)%total]]++
				}
				for i := range ws {
					share := float64(countOf(s.schedule, uint32(i))) / float64(total)
					ideal := share * float64(window)
					if math.Abs(float64(counts[i])-ideal) > 2 {
						t.Fatalf("weights %v: window %d at %d: target %d got %d, ideal %.2f", ws, window, start, i, counts[i], ideal)
					}
				}
			}
			if total > 300 && window > 50 {
				break // large periods: the short windows are what matter
			}
		}
	}
}

func countOf(s []uint32, v uint32) int {
	n := 0
	for _, x := range s {
		if x == v {
			n++
		}
	}
	return n
}

func TestScaledWeightsKeepRatios(t *testing.T) {
	ws := make([]int, 1000)
	for i := range ws {
		ws[i] = 60000 + i
	}
	s := NewSnapshot(svcWith(ws...), true, t0)
	if len(s.schedule) > maxSlots+len(ws) {
		t.Fatalf("schedule too long: %d", len(s.schedule))
	}
	if len(s.Targets) != 1000 {
		t.Fatalf("targets %d", len(s.Targets))
	}
}

func TestPickSkipsExpiredAndSkipped(t *testing.T) {
	svc := svcWith(1, 1, 1)
	svc.Instances[0].TTLSeconds = 10
	svc.Instances[0].ExpiresAt = t0.Add(10 * time.Second)
	s := NewSnapshot(svc, true, t0)
	later := t0.Add(11 * time.Second)
	skip := func(addr string) bool { return addr == "10.0.0.1:8001" }
	for i := 0; i < 100; i++ {
		tg, ok := s.Pick(later, skip)
		if !ok || tg.ID != "i2" {
			t.Fatalf("pick %d: %+v %v", i, tg, ok)
		}
	}
	seen := map[string]bool{}
	for i := 0; i < 30; i++ {
		tg, _ := s.Pick(t0, nil)
		seen[tg.ID] = true
	}
	if !seen["i0"] {
		t.Error("lease not yet expired but never picked")
	}
	if !s.HasLeases() || NewSnapshot(svcWith(1), true, t0).HasLeases() {
		t.Error("HasLeases wrong")
	}
	if _, ok := s.Pick(later, func(string) bool { return true }); ok {
		t.Error("picked although everything is skipped")
	}
	empty := NewSnapshot(svcWith(0, 0), true, t0)
	if _, ok := empty.Pick(t0, nil); ok {
		t.Error("picked from an all-zero service")
	}
	bad := NewSnapshot(registry.Service{Instances: []registry.Instance{{ID: "x", Address: "nohost", Weight: 1}, {ID: "y", Address: "h:0", Weight: 1}, {ID: "z", Address: "h:1", Weight: 65536}}}, true, t0)
	if len(bad.Targets) != 0 {
		t.Errorf("invalid addresses kept: %+v", bad.Targets)
	}
	tg, _ := NewSnapshot(svcWith(1), true, t0).Pick(t0, nil)
	if tg.Host != "10.0.0.0" || tg.Port != 8000 || tg.Addr != "10.0.0.0:8000" {
		t.Errorf("target parts: %+v", tg)
	}
}

func TestPickZeroAllocs(t *testing.T) {
	s := NewSnapshot(svcWith(1, 2, 7), true, t0)
	skip := func(addr string) bool { return false }
	if n := testing.AllocsPerRun(1000, func() { _, _ = s.Pick(t0, skip) }); n != 0 {
		t.Fatalf("Pick allocates %.1f times", n)
	}
}

func TestPickConcurrent(t *testing.T) {
	s := NewSnapshot(svcWith(1, 2, 7), true, t0)
	var mu sync.Mutex
	counts := map[string]int{}
	var wg sync.WaitGroup
	for g := 0; g < 8; g++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			local := map[string]int{}
			for i := 0; i < 1000; i++ {
				tg, _ := s.Pick(t0, nil)
				local[tg.ID]++
			}
			mu.Lock()
			for k, v := range local {
				counts[k] += v
			}
			mu.Unlock()
		}()
	}
	wg.Wait()
	// 8000 picks = 800 full periods: exact shares.
	if counts["i0"] != 800 || counts["i1"] != 1600 || counts["i2"] != 5600 {
		t.Fatalf("concurrent counts %v", counts)
	}
}

// Data written around the store (another writer, an old version) with an
// address whose host could split the upstream request is never picked.
func TestSnapshotSkipsInjectableAddresses(t *testing.T) {
	svc := registry.Service{Name: "s", Version: 1, Instances: []registry.Instance{
		{ID: "bad", Address: "evil\r\nX-Injected: 1:80", Weight: 100},
		{ID: "space", Address: "a b:80", Weight: 100},
		{ID: "ok", Address: "10.0.0.1:80", Weight: 1},
	}}
	s := NewSnapshot(svc, true, t0)
	if len(s.Targets) != 1 || s.Targets[0].ID != "ok" {
		t.Fatalf("targets %+v, want only ok", s.Targets)
	}
}
