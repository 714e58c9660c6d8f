package main

import (
	"flag"
	"fmt"
	stdlog "log"
	"os"

	"github.com/Kong/go-pdk/server"
	"github.com/redis/go-redis/v9"
)

// priority places the plugin after authentication plugins (key-auth 1250,
// jwt 1450...) so consumers are known to rate limiting, and just after
// Kong's own rate-limiting (910) rather than tied with it (a tie leaves the
// order between the two to chance).
const priority = 905

// metricsListen is the optional Prometheus listener (off by default): the
// flag, else SR_PLUGIN_METRICS_LISTEN. go-pdk parses the command line with
// the standard flag set, so the flag sits beside its -kong-prefix and
// -dump: pluginserver_service_registry_start_cmd =
// /usr/local/bin/service-registry -metrics-listen 127.0.0.1:9542
// (a flag survives nginx, which clears the environment of what it starts
// unless the variable is listed with an env directive).
var metricsListen = flag.String("metrics-listen", "", "serve Prometheus metrics on this address (host:port; default: $SR_PLUGIN_METRICS_LISTEN, else off)")

func main() {
	v, err := checkedVersion()
	if err != nil {
		fmt.Fprintln(os.Stderr, "service-registry:", err)
		os.Exit(2)
	}
	if wantsDump(os.Args[1:]) {
		if err := dump(os.Stdout, v); err != nil {
			fmt.Fprintln(os.Stderr, "service-registry: -dump:", err)
			os.Exit(1)
		}
		return
	}
	// go-redis logs every failed dial; with Redis down that is a line per
	// background check. Route it through the throttled logger instead.
	redis.SetLogger(redisLogger{})
	// go-pdk's server logs every connection Kong ends with the standard
	// logger: "EOF" when Kong drops an idle connection from its pool, and a
	// write error for every request a plugin ended with kong.response.exit
	// (Kong never resumes the handler's coroutine and closes the socket), so
	// at c=16 a 429 storm wrote thousands of lines. One throttled line.
	stdlog.SetFlags(0)
	stdlog.SetOutput(pdkLog{})
	startMetrics(v)
	if err := server.StartServer(New, v, priority); err != nil {
		fmt.Fprintln(os.Stderr, "service-registry:", err)
		os.Exit(1)
	}
}

func wantsDump(args []string) bool {
	for _, a := range args {
		if a == "-dump" || a == "--dump" || a == "-dump=true" || a == "--dump=true" {
			return true
		}
	}
	return false
}

// startMetrics opens the metrics listener when one is configured. A
// listener that cannot open is logged and skipped: metrics must never keep
// Kong's plugin server from starting.
func startMetrics(version string) {
	flag.Parse()
	addr := *metricsListen
	if addr == "" {
		addr = os.Getenv("SR_PLUGIN_METRICS_LISTEN")
	}
	if addr == "" {
		return
	}
	bound, err := serveMetrics(addr, version)
	if err != nil {
		logger().Error("service-registry: metrics listener not started", "addr", addr, "error", err)
		return
	}
	logger().Info("service-registry: metrics listening", "addr", bound.String())
}
