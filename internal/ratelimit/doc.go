// Package ratelimit enforces request rate limits shared by every Kong node
// through one Redis (standalone or Cluster).
//
// Each request is checked against all its limits (per second, per minute,
// each with a burst) by one Lua script in one EVALSHA: GCRA on Redis' own
// clock (TIME), all-or-nothing (a request denied by one limit consumes none
// of the others), keys `<prefix>:v1:{rl:<key>}:<s|m>` hash-tagged so all
// limits of a request share a Cluster slot. A denied key is remembered
// locally until its retry-after, so traffic over the limit costs (almost) no
// Redis calls. Every call is bounded by Options.Timeout; when Redis fails
// the Policy decides (FailOpen admits, FailClosed errors, FailLocal uses an
// in-process share of the limit), a backoff keeps a dead Redis off the hot
// path, and limiting resumes by itself when Redis answers again.
//
// It must not: read the caller's clock for limiting decisions, make more than
// one Redis round trip per decision, block longer than Options.Timeout, or
// know about Kong's PDK (the plugin passes plain values in and sends the
// header map out).
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
//	key := ratelimit.Key(pluginID, by, value, func() string { ip, _ := kong.Client.GetForwardedIp(); return ip })
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
// requests in every rolling Period, cluster-wide; Burst is how many may come
// at once beyond the steady pace of one per Period/Rate. Kong's fixed windows
// admit up to 2×Rate across a boundary; this does not.
package ratelimit
