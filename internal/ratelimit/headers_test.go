package ratelimit

import (
	"reflect"
	"testing"
	"time"
)

func res(allowed bool, ps ...PeriodResult) *Result {
	r := &Result{Allowed: allowed, n: len(ps)}
	copy(r.periods[:], ps)
	return r
}

func TestHeaders(t *testing.T) {
	sec, min := PerSecond(10, 0), PerMinute(100, 0)
	cases := []struct {
		name string
		r    *Result
		hide bool
		want map[string][]string
	}{
		{
			name: "allowed: minute wins a tie on remaining",
			r: res(true,
				PeriodResult{Limit: sec, Remaining: 3, ResetAfter: 400 * time.Millisecond},
				PeriodResult{Limit: min, Remaining: 3, ResetAfter: 59500 * time.Millisecond}),
			want: map[string][]string{
				"X-RateLimit-Limit-Second": {"10"}, "X-RateLimit-Remaining-Second": {"3"},
				"X-RateLimit-Limit-Minute": {"100"}, "X-RateLimit-Remaining-Minute": {"3"},
				"RateLimit-Limit": {"100"}, "RateLimit-Remaining": {"3"}, "RateLimit-Reset": {"60"},
			},
		},
		{
			name: "allowed: fewest remaining wins",
			r: res(true,
				PeriodResult{Limit: sec, Remaining: 0, ResetAfter: 100 * time.Millisecond},
				PeriodResult{Limit: min, Remaining: 50, ResetAfter: 30 * time.Second}),
			want: map[string][]string{
				"X-RateLimit-Limit-Second": {"10"}, "X-RateLimit-Remaining-Second": {"0"},
				"X-RateLimit-Limit-Minute": {"100"}, "X-RateLimit-Remaining-Minute": {"50"},
				"RateLimit-Limit": {"10"}, "RateLimit-Remaining": {"0"}, "RateLimit-Reset": {"1"},
			},
		},
		{
			name: "denied by the minute: Retry-After rounds up",
			r: res(false,
				PeriodResult{Limit: sec, Remaining: 4, ResetAfter: 500 * time.Millisecond},
				PeriodResult{Limit: min, Remaining: 0, RetryAfter: 2100 * time.Millisecond, ResetAfter: 59 * time.Second}),
			want: map[string][]string{
				"X-RateLimit-Limit-Second": {"10"}, "X-RateLimit-Remaining-Second": {"4"},
				"X-RateLimit-Limit-Minute": {"100"}, "X-RateLimit-Remaining-Minute": {"0"},
				"RateLimit-Limit": {"100"}, "RateLimit-Remaining": {"0"}, "RateLimit-Reset": {"3"},
				"Retry-After": {"3"},
			},
		},
		{name: "hidden", r: res(false, PeriodResult{Limit: sec, RetryAfter: time.Second}), hide: true},
		{name: "fail-open admission knows nothing", r: &Result{Allowed: true, Source: SourceFailOpen}},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			if got := Headers(c.r, c.hide); !reflect.DeepEqual(got, c.want) {
				t.Fatalf("got  %v\nwant %v", got, c.want)
			}
		})
	}
}

func TestBody(t *testing.T) {
	if got := string(Body("")); got != `{"message":"API rate limit exceeded"}` {
		t.Fatal(got)
	}
	if got := string(Body(`slow "down"`)); got != `{"message":"slow \"down\""}` {
		t.Fatal(got)
	}
}
