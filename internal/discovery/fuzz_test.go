package discovery

import (
	"encoding/json"
	"net"
	"strconv"
	"testing"
	"time"

	"github.com/kong-service-registry/service-registry/internal/registry"
)

// FuzzSnapshot decodes instance records as the registry stores them (one
// JSON document per instance, what registry.decodeService unmarshals) into
// a snapshot and checks the picker's promises: only instances with a usable
// address and a weight in 1..MaxWeight are pickable, one schedule period
// gives every target exactly its reduced weight (when no scaling applies),
// an expired lease is never picked, and skipping everything yields nothing.
func FuzzSnapshot(f *testing.F) {
	f.Add([]byte(`{"id":"a","address":"127.0.0.1:8080","weight":1}`), []byte(`{"id":"b","address":"[::1]:9000","weight":3}`), int64(0))
	f.Add([]byte(`{"id":"a","address":"h:0","weight":65536}`), []byte(`{"id":"b","address":"h","weight":-1}`), int64(5))
	f.Add([]byte(`{"id":"a","address":"h:1","weight":65535}`), []byte(`{"id":"b","address":"g:2","weight":1}`), int64(0))
	f.Add([]byte(`{"id":"a","address":"h:1","weight":2,"ttl_s":5,"expires_at":"2026-01-01T00:00:00Z"}`), []byte(`{"id":"b","address":":80","weight":1}`), int64(1))
	f.Add([]byte(`not json`), []byte(`{"weight":"x"}`), int64(0))
	f.Fuzz(func(t *testing.T, in1, in2 []byte, nowSec int64) {
		var ins []registry.Instance
		for i, raw := range [][]byte{in1, in2} {
			var in registry.Instance
			if json.Unmarshal(raw, &in) == nil {
				// Instances live in a Redis hash keyed by id: ids are unique.
				in.ID = strconv.Itoa(i) + in.ID
				ins = append(ins, in)
			}
		}
		now := time.Unix(1767225600+nowSec%100000, 0) // around 2026-01-01
		s := NewSnapshot(registry.Service{Name: "svc", Version: 1, Instances: ins}, true, now)
		for _, tg := range s.Targets {
			if tg.Weight < 1 || tg.Weight > registry.MaxWeight || tg.Port < 1 || tg.Port > 65535 || tg.Host == "" {
				t.Fatalf("unusable target kept: %+v", tg)
			}
			if h, p, err := net.SplitHostPort(tg.Addr); err != nil || h != tg.Host {
				t.Fatalf("target %+v: address does not match its host", tg)
			} else if n, _ := strconv.Atoi(p); n != tg.Port {
				t.Fatalf("target %+v: address does not match its port", tg)
			}
		}
		if len(s.Targets) == 0 {
			if _, ok := s.Pick(time.Time{}, nil); ok {
				t.Fatal("picked from an empty snapshot")
			}
			return
		}
		// One full period with no clock: each target exactly its share.
		period := len(s.schedule)
		counts := map[int]int{}
		g, total := 0, 0
		for _, tg := range s.Targets {
			g = gcd(g, tg.Weight)
		}
		for _, tg := range s.Targets {
			total += tg.Weight / g
		}
		for i := 0; i < period; i++ {
			tg, ok := s.Pick(time.Time{}, nil)
			if !ok {
				t.Fatal("no pick with usable targets")
			}
			for j := range s.Targets {
				if s.Targets[j].ID == tg.ID {
					counts[j]++
				}
			}
		}
		if total <= maxSlots {
			for j, tg := range s.Targets {
				if counts[j] != tg.Weight/g {
					t.Fatalf("target %d (weight %d) picked %d times in a period of %d", j, tg.Weight, counts[j], period)
				}
			}
		}
		// With the clock: never an expired lease.
		for i := 0; i < 2*len(s.Targets)+2; i++ {
			tg, ok := s.Pick(now, nil)
			if ok && tg.expires != 0 && tg.expires <= now.UnixNano() {
				t.Fatalf("picked an expired lease %+v at %v", tg, now)
			}
		}
		if _, ok := s.Pick(now, func(string) bool { return true }); ok {
			t.Fatal("picked although every target is skipped")
		}
	})
}
