package ratelimit

import (
	"encoding/json"
	"strconv"
	"time"
)

// Header names, as Kong's rate-limiting plugin sends them.
const (
	HeaderLimit      = "RateLimit-Limit"
	HeaderRemaining  = "RateLimit-Remaining"
	HeaderReset      = "RateLimit-Reset"
	HeaderRetryAfter = "Retry-After"
)

// Headers renders the client headers of a decision in one map, shaped for
// go-pdk's kong.response.set_headers (allowed) or kong.response.exit
// (denied), so the plugin spends one PDK call on them. It returns nil when
// hide is set (config hide_client_headers) or when nothing is known (the
// fault-tolerant policy admitted without Redis), like Kong.
//
// Semantics follow kong/plugins/rate-limiting/handler.lua (3.9):
//   - X-RateLimit-Limit-<Second|Minute|Hour|Day> and
//     X-RateLimit-Remaining-<...> for every limit;
//   - RateLimit-Limit/-Remaining/-Reset describe the limit with the fewest
//     remaining requests, the longer period winning a tie;
//   - RateLimit-Reset is whole seconds (at least 1) until that limit is full
//     again; on a denial it equals Retry-After, as in Kong;
//   - Retry-After (denials only) is whole seconds (at least 1, rounded up)
//     until a request would be admitted.
func Headers(r *Result, hide bool) map[string][]string {
	if hide || r.n == 0 {
		return nil
	}
	h := make(map[string][]string, 2*r.n+4)
	best := -1
	for i, p := range r.periods[:r.n] {
		if name := p.Limit.periodName(); name != "" {
			h["X-RateLimit-Limit-"+name] = []string{strconv.Itoa(p.Limit.Rate)}
			h["X-RateLimit-Remaining-"+name] = []string{strconv.Itoa(p.Remaining)}
		}
		if best < 0 {
			best = i
			continue
		}
		b := r.periods[best]
		if p.Remaining < b.Remaining || (p.Remaining == b.Remaining && p.Limit.Period > b.Limit.Period) {
			best = i
		}
	}
	b := r.periods[best]
	h[HeaderLimit] = []string{strconv.Itoa(b.Limit.Rate)}
	h[HeaderRemaining] = []string{strconv.Itoa(b.Remaining)}
	if r.Allowed {
		h[HeaderReset] = []string{strconv.Itoa(ceilSeconds(b.ResetAfter))}
	} else {
		ra := strconv.Itoa(ceilSeconds(r.RetryAfter()))
		h[HeaderReset] = []string{ra}
		h[HeaderRetryAfter] = []string{ra}
	}
	return h
}

func ceilSeconds(d time.Duration) int {
	s := int((d + time.Second - 1) / time.Second)
	return max(1, s)
}

// Body is the JSON body of a denial, Kong's shape: {"message":"..."}.
// An empty message gives Kong's default "API rate limit exceeded".
func Body(message string) []byte {
	if message == "" {
		message = "API rate limit exceeded"
	}
	b, _ := json.Marshal(struct {
		Message string `json:"message"`
	}{message})
	return b
}
