package main

import (
	"context"
	"fmt"
	"log/slog"
	"os"
	"strings"
	"time"
)

// logger writes to stderr, which Kong copies into its error.log.
func logger() *slog.Logger {
	logOnce.Do(func() { log = slog.New(slog.NewTextHandler(os.Stderr, nil)) })
	return log
}

// logThrottled writes msg at most once per 10 s per key: a broken Redis or
// an unknown service must not write one line per request.
func logThrottled(key, msg string, args ...any) {
	now := time.Now()
	if last, ok := logged.Load(key); ok && now.Sub(last.(time.Time)) < 10*time.Second {
		return
	}
	logged.Store(key, now)
	logger().Warn(msg, args...)
}

// redisLogger writes go-redis's internal messages at most once per 10 s per
// message format.
type redisLogger struct{}

func (redisLogger) Printf(_ context.Context, format string, v ...any) {
	logThrottled("go-redis:"+format, "service-registry: redis client: "+fmt.Sprintf(format, v...))
}

// pdkLog is go-pdk's standard-logger output: its connection messages, at
// most one line per 10 s, the Listening line first of all.
type pdkLog struct{}

func (pdkLog) Write(p []byte) (int, error) {
	logThrottled("go-pdk", "service-registry: plugin server: "+strings.TrimSpace(string(p)))
	return len(p), nil
}
