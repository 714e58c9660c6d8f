// Package ratelimit enforces request rate limits shared by every Kong node
// through one Redis (standalone or Cluster).
//
// Each request is checked against all its limits (per second, per minute,
// each with a burst) by one Lua script in one EVALSHA: GCRA on Redis' own
// clock (TIME), all-or-nothing (a request denied by one limit consumes none
// of the others), keys `<prefix>:v1:{rl:<key>}:<s|m>` hash-tagged so all
// limits of a request share a Cluster slot. A denied key is remembered
// locally until its retry-after, so traffic over the limit costs (almost) no
// Redis calls. A key busy on this node (its rate here times its slack, see
// below, is 2 or more) leases that many units of capacity in the same one
// script call and admits the next requests from them without Redis
// (lease.go); cold keys make one call per request. Every call is bounded by
// Options.Timeout; when Redis fails the Policy decides (FailOpen admits,
// FailClosed errors), a backoff keeps a dead Redis off the hot path, and
// limiting resumes by itself when Redis answers again.
//
// It must not: read the caller's clock for limiting decisions, make more than
// one Redis round trip per decision, block longer than Options.Timeout, or
// know about Kong's PDK (the plugin passes plain values in and sends the
// header map out).
//
// # The bound
//
// Guarantee, summed over every node: in every rolling window of length
// Period at most Rate+Burst requests are admitted, per limit, whatever the
// mix of leased and cold requests. Why: every admitted request holds one
// GCRA slot v in Redis (slots of a limit are at least interval apart), and
// is admitted at a time a (Redis clock) with v - τ - s ≤ a ≤ v + s, where
// s = Period/SlackDivisor is the limit's slack (20 ms per second, 1.2 s per
// minute) and τ = Burst×interval the GCRA tolerance: the script grants a
// slot only up to τ + s ahead of its own now, and a node spends a leased
// unit no later than its slot + s, measured from its own clock since it sent
// the call (an upper bound of Redis' clock). A window [x, x+Period) thus
// holds admissions whose slots lie in an open span of Period + 2s + τ; with
// interval = ⌈(Period + 2s) / Rate⌉ µs that span holds at most Rate + Burst
// slots. A cold request's admission time is the script's own now (plus the
// reply's trip back, which must stay under s: Options.Timeout defaults to
// 20 ms).
//
// What it costs (under-admission), exactly:
//   - the sustained rate is Rate per Period + 2s (1.04×Period): a saturated
//     key gets 96.2 % of Rate (measured 96.3/s of 100/s in
//     TestLeasesThreeNodesBound);
//   - units a node leased and did not spend before slot + s are lost: at
//     most two leases per key and node (the one being spent and the next,
//     fetched when it is half spent), each sized to what the node's recent
//     rate spends within s and never more than Rate/SlackDivisor units
//     (what the limit itself admits in one slack: 2 % of Rate), so a node
//     never holds more than 4 % of a key's capacity away from the others;
//   - rounding the interval up to whole µs (visible only above ~50 000/s).
//
// And what it allows beyond plain GCRA: up to Burst + 1 + ⌊s/interval⌋
// requests at once on a fresh key (the slack ahead, which lets a node be
// admitted while another node's lease holds the slots just ahead of now),
// never more than Rate+Burst in any rolling Period.
//
// Redis round trips per admitted request: 1 for a cold key; at a busy key
// 1/n for leases of n = min(rate × s, Rate/50) (a node at 1 000 req/s on a
// per-second limit of at least 1 000/s leases 20 units: 0.05; at 100 req/s
// on a per-minute limit of 6 000/min or more, 120: 0.008). Headers of a
// leased request are the node's view: Remaining counts down from the
// lease's grant and does not see units other nodes were granted since. Leases need Redis to reply within s; nodes' clocks only need to
// run at the right speed over one slack, their offsets never matter.
//
// Wiring in the plugin (one Limiter per Redis client, process-wide):
//
//	// once per Redis client (redis.Options.ContextTimeoutEnabled = true!):
//	lim := ratelimit.New(rdb, ratelimit.Options{
//		Prefix:  cfg.Redis.KeyPrefix,                                  // "" → "sr"
//		Timeout: time.Duration(cfg.Redis.TimeoutMs) * time.Millisecond, // 0 → 20ms
//		Policy:  ratelimit.FailOpen,                                    // fault_tolerant=false → FailClosed
//	})
//
//	// access phase, before the breaker and the pick:
//	limits := ratelimit.FromConfig(rl.RequestsPerSecond, rl.RequestsPerMin, rl.Burst)
//	by, _ := ratelimit.ParseLimitBy(rl.LimitBy)   // validate once per config
//	var value string
//	switch by {
//	case ratelimit.ByService:  value = cfg.ServiceID // no PDK call; global plugin: kong.Router.GetService().Id
//	case ratelimit.ByRoute:    value = cfg.RouteID   // route-scoped plugin only; else kong.Router.GetRoute().Id
//	case ratelimit.ByIP:       value, _ = kong.Client.GetForwardedIp()
//	case ratelimit.ByConsumer: c, _ := kong.Client.GetConsumer(); value = c.Id
//	case ratelimit.ByHeader:   value, _ = kong.Request.GetHeader(rl.HeaderName)
//	}
//	if value == "" { by, value = ratelimit.ByIP, ip } // Kong's fallback
//	key := ratelimit.Key(pluginID, by, value)
//	res, err := lim.Allow(ctx, key, limits)
//	if err != nil { // ErrUnavailable with FailClosed, or a bad config
//		kong.Response.Exit(500, []byte(`{"message":"An unexpected error occurred"}`), jsonHeaders)
//		return
//	}
//	h := ratelimit.Headers(&res, rl.HideClientHeaders) // nil when hidden
//	if !res.Allowed {
//		if h == nil { h = map[string][]string{} }
//		h["Content-Type"] = []string{"application/json; charset=utf-8"}
//		kong.Response.Exit(rl.ErrorCode /*429*/, ratelimit.Body(rl.ErrorMessage), h)
//		return
//	}
//	if h != nil {
//		kong.Response.SetHeaders(h) // the one set_headers call
//	}
//
// Limit semantics: Limit{Rate, Period, Burst} admits at most Rate+Burst
// requests in every rolling Period, cluster-wide (see "The bound"); Burst is
// how many may come at once beyond the steady pace. Kong's fixed windows
// admit up to 2×Rate across a boundary; this does not.
package ratelimit
