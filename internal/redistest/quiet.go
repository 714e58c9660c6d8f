package redistest

import (
	"context"

	"github.com/redis/go-redis/v9"
)

// SilenceClientLogs turns off go-redis' own logger for the whole test
// binary: tests that kill or pause Redis on purpose would otherwise bury
// their output under its redial complaints. Call it from TestMain.
func SilenceClientLogs() { redis.SetLogger(silentLogger{}) }

type silentLogger struct{}

func (silentLogger) Printf(context.Context, string, ...any) {}
