// Package breaker is the circuit breaker of the plugin: one breaker per
// backend instance (keyed by its "host:port"), shared by every Kong node.
//
// Decisions are local and lock-free: Allow on a closed instance is one
// atomic load, recording an outcome a few atomic adds; no Redis on the
// request path, no allocation. An instance opens after FailureThreshold
// consecutive failures or FailureRatio failed calls over Window (at least
// MinCalls), stays open OpenTimeout (doubling on repeated trips up to
// MaxOpenTimeout), then half-opens and lets HalfOpenMaxCalls probes through
// across the whole cluster; a successful probe closes it, a failed one
// reopens it.
//
// Nodes share counts and state through Redis in a periodic pipelined sync
// (Run, every SyncInterval = 200ms, and at once after a local trip or a
// successful probe): one Lua call per instance adds this node's calls and
// failures to the cluster window, opens the instance cluster-wide when the
// cluster's numbers (or any node's own trip) say so, ends the open period on
// Redis' clock, and hands out the half-open probe tokens (a token whose grant
// never reached its node, or that no request of its node used for 5 sync
// intervals, goes back to the budget at that node's next sync, so a node
// whose traffic stopped cannot hold the probe until ProbeTimeout). A
// backend failing on one node is thus open on all of them within
// about one sync interval. With Redis unreachable
// every node keeps breaking on its own counts and grants its own probes.
// Cost: per node, one pipelined round trip per SyncInterval carrying one
// script call per instance it knows (instances idle for IdleTTL are
// dropped); per request, nothing.
//
// It must not: take a lock or call Redis on the request path, hold a
// distributed lock around a call, or know about Kong's PDK.
//
// Wiring in the plugin (one Breakers per circuit_breaker config + Redis,
// in a process-wide registry; Run stopped by the context when dropped):
//
//	b, err := breaker.New(breaker.Options{
//		Settings: breaker.Settings{
//			FailureThreshold: cb.FailureThreshold, FailureRatio: cb.FailureRatio,
//			MinCalls: cb.MinCalls, Window: ms(cb.WindowMs), OpenTimeout: ms(cb.TimeoutMs),
//			HalfOpenMaxCalls: cb.HalfOpenMaxCalls, FailureStatuses: cb.FailureStatuses,
//		},
//		Redis: rdb, Prefix: cfg.Redis.KeyPrefix, Scope: cfg.Service,
//	})
//	go b.Run(ctx)
//
//	// access phase, after the rate limit: the picker passes over open
//	// instances, then admits the one it picked.
//	pick := picker.Pick(func(addr string) bool { return b.Skip(addr) })
//	if pick == "" {
//		if wait, all := b.AllOpen(addrs); all {
//			kong.Response.Exit(cb.ErrorCode /*503*/, body, map[string][]string{
//				"Retry-After": {strconv.Itoa(breaker.RetryAfterSeconds(wait))}})
//			return
//		}
//	}
//	if _, err := b.Allow(pick); err != nil { ... try the next instance or 503 ... }
//
//	// log phase (another event): the outcome of the instance actually used,
//	// from kong.log.serialize()'s tries[] (last try: ip:port, code, state).
//	b.Record(addr, b.Settings().Classify(try.Code, try.State == "failed"))
//
// Allow returns a Ticket whose Done(outcome) is the allocation-free
// two-step form when the admission and the outcome meet in one goroutine;
// across Kong's access and log events use Record, which in half-open counts
// an outcome only while a probe admitted on this node is pending.
package breaker
