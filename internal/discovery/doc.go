// Package discovery is the plugin's in-process view of the registry: a cache
// of immutable per-service snapshots and a lock-free weighted picker over
// them, so that resolving a request to a backend instance costs no Redis
// round trip in steady state.
//
// A Cache belongs to one Redis client (one set of connection settings) and
// is shared by every plugin instance using it. A snapshot is loaded on first
// use (one load per service however many requests wait, singleflight),
// replaced when the change feed announces a newer version, and re-checked
// against the service's version key at most once per max age (the poll
// backstop: pub/sub drops messages while reconnecting). Refreshes run in the
// background; requests never wait for them. When Redis cannot be reached
// the last snapshot keeps being served, flagged stale, counted, and logged
// once per transition.
//
// It must not write to the registry, block a request on anything but the
// very first load of a service, or allocate per pick.
package discovery
