package main

import (
	"log/slog"
	"sync"
	"time"
)

// Every piece of process-wide state of the plugin server, in one place.
// Each is process-wide for one reason: Kong makes a new Config per plugin
// entity and config version (and per worker asking), with no close hook,
// so whatever must outlive one version, or be shared by the instances of
// one process, cannot live on a Config.
var (
	// backends holds one Redis client set, discovery cache and guard set
	// per distinct Redis settings (backends.go): the cache and breaker
	// states must survive config versions, and one change-feed
	// subscription per Redis serves every plugin instance.
	backends = &backendRegistry{m: map[string]*backend{}, refs: map[string]int{}, idle: time.Minute}

	// serviceNames maps Kong service id → name (servicename.go), so
	// resolving the default registry service costs one
	// kong.router.get_service per Kong service and process, not per
	// request or per config version.
	serviceNames sync.Map // string -> string

	// hostIPs caches what registry host names resolve to, for the
	// breaker's outcome addresses (outcome.go): one lookup per host and
	// 30 s for the whole process, whatever the number of configs.
	hostIPs = &dnsCache{m: map[string]dnsEntry{}, ttl: 30 * time.Second, timeout: time.Second}

	// logOnce and log: one logger for the process, writing to stderr,
	// which Kong copies into its error.log (logging.go).
	logOnce sync.Once
	log     *slog.Logger

	// logged remembers when each throttled message was last written
	// (logThrottled): the throttle must hold across config versions, or a
	// config change would let a broken Redis flood the log again.
	logged sync.Map // key -> time.Time

	// metrics are the plugin's counters (metrics.go): Prometheus scrapes
	// one process, and a counter must not restart with a config version.
	metrics = &pluginMetrics{}

	// refusedConfigs remembers the (plugin id, __seq__) pairs whose
	// refusal was logged: every Kong worker starts its own instance of a
	// config version, one line per version is enough.
	refusedConfigs sync.Map
)
