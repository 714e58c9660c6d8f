package main

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/kong-service-registry/service-registry/internal/redistest"
	"github.com/kong-service-registry/service-registry/migrations"
)

// TestMigrateStatusRedisDown (issue 13 defect 10): with Redis unreachable,
// `migrate status` still says what this binary knows (it printed "latest
// known: 0") and exits 1; every log line, go-redis's own included, is JSON.
func TestMigrateStatusRedisDown(t *testing.T) {
	var stdout, stderr bytes.Buffer
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	url := fmt.Sprintf("redis://127.0.0.1:%d/0", redistest.FreePort(t))
	code := run(ctx, []string{"migrate", "status"}, env(map[string]string{"SR_REDIS_URL": url}), &stdout, &stderr)
	if code != 1 || !strings.Contains(stdout.String(), fmt.Sprintf("latest known: %d\n", migrations.Latest())) {
		t.Fatalf("exit %d, stdout:\n%s", code, stdout.String())
	}
	lines := strings.Split(strings.TrimSpace(stderr.String()), "\n")
	for _, l := range lines {
		var m map[string]any
		if err := json.Unmarshal([]byte(l), &m); err != nil {
			t.Errorf("log line is not JSON: %q", l)
		}
	}
	if !strings.Contains(stderr.String(), `"msg":"migrate status"`) || !strings.Contains(stderr.String(), `"msg":"redis client"`) {
		t.Fatalf("no error logged:\n%s", stderr.String())
	}
}

// TestHelpGoesToStdout (defect 10): asked-for help is output, not an
// error: `adminsvc --help | less` must show it; a bad flag goes to stderr.
func TestHelpGoesToStdout(t *testing.T) {
	var stdout, stderr bytes.Buffer
	if code := run(context.Background(), []string{"--help"}, env(nil), &stdout, &stderr); code != 0 ||
		!strings.Contains(stdout.String(), "Usage:") || !strings.Contains(stdout.String(), "-redis-url") || stderr.Len() != 0 {
		t.Fatalf("--help: exit %d\nstdout:\n%s\nstderr:\n%s", code, stdout.String(), stderr.String())
	}
	stdout.Reset()
	if code := run(context.Background(), []string{"--no-such-flag"}, env(nil), &stdout, &stderr); code != 2 ||
		stdout.Len() != 0 || !strings.Contains(stderr.String(), "no-such-flag") {
		t.Fatalf("bad flag: exit %d\nstdout:\n%s\nstderr:\n%s", code, stdout.String(), stderr.String())
	}
}
