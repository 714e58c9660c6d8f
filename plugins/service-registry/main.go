package main

import (
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
