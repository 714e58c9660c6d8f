package registry_test

import (
	"testing"
	"time"

	"github.com/kong-service-registry/service-registry/internal/registry"
)

// One definition of "lease over": at the end itself, never without a TTL.
func TestInstanceExpired(t *testing.T) {
	end := time.Date(2026, 1, 1, 0, 0, 10, 0, time.UTC)
	lease := registry.Instance{TTLSeconds: 10, ExpiresAt: end}
	for _, c := range []struct {
		in   registry.Instance
		now  time.Time
		want bool
	}{
		{lease, end.Add(-time.Nanosecond), false},
		{lease, end, true},
		{lease, end.Add(time.Second), true},
		{registry.Instance{ExpiresAt: end}, end.Add(time.Hour), false}, // no TTL: no lease
		{registry.Instance{TTLSeconds: 10}, end.Add(time.Hour), false}, // no end recorded
	} {
		if got := c.in.Expired(c.now); got != c.want {
			t.Errorf("%+v at %v: expired=%v, want %v", c.in, c.now, got, c.want)
		}
	}
}
