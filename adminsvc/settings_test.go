package main

import (
	"bytes"
	"context"
	"errors"
	"flag"
	"io"
	"log/slog"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/kong-service-registry/service-registry/internal/redistest"
	"github.com/kong-service-registry/service-registry/internal/testbin"
)

func env(m map[string]string) func(string) string { return func(k string) string { return m[k] } }

func TestSettingsFlagsWinOverEnv(t *testing.T) {
	e := env(map[string]string{"SR_LISTEN": ":9001", "SR_RECONCILE_INTERVAL": "5s", "SR_API_KEYS": "from-env", "SR_KONG_MODE": "dbless"})
	s, _, err := parseSettings("adminsvc", []string{"--listen", ":9002", "--api-keys", "from-flag"}, e, io.Discard)
	if err != nil {
		t.Fatal(err)
	}
	if s.Listen != ":9002" || s.APIKeys != "from-flag" {
		t.Fatalf("flags must win: %+v", s)
	}
	if s.Reconcile != 5*time.Second || s.KongMode != "dbless" {
		t.Fatalf("env must apply when no flag: %+v", s)
	}
	s, _, err = parseSettings("adminsvc", nil, env(nil), io.Discard)
	if err != nil {
		t.Fatal(err)
	}
	if s.Listen != ":81" || s.RedisURL != "redis://127.0.0.1:6379/0" || s.KongAdminURL != "http://127.0.0.1:8001" ||
		s.KongMode != "auto" || s.Reconcile != 30*time.Second || s.BodyLimit != 1<<20 || s.RedisPrefix != "sr" {
		t.Fatalf("defaults: %+v", s)
	}
	for _, bad := range []map[string]string{{"SR_KONG_MODE": "cloud"}, {"SR_RECONCILE_INTERVAL": "soon"}, {"SR_RATE_LIMIT": "-1"}} {
		if _, _, err := parseSettings("adminsvc", nil, env(bad), io.Discard); err == nil {
			t.Fatalf("%v accepted", bad)
		}
	}
}

func TestPluginRedisFromURLAndOverrides(t *testing.T) {
	s, _, _ := parseSettings("adminsvc", []string{"--redis-url", "rediss://u:pw@redis.internal:6380/3"}, env(nil), io.Discard)
	opt, err := redis.ParseURL(s.RedisURL)
	if err != nil {
		t.Fatal(err)
	}
	got := pluginRedis(s, opt)
	want := map[string]any{"host": "redis.internal", "port": 6380, "username": "u", "password": "pw", "database": 3, "ssl": true, "ssl_verify": true}
	if !reflect.DeepEqual(got, want) {
		t.Fatalf("from url: %v", got)
	}
	s, _, _ = parseSettings("adminsvc", []string{"--plugin-redis-host", "10.1.1.1", "--plugin-redis-database", "0",
		"--redis-sentinel-master", "mymaster", "--redis-sentinel-addrs", "s1:26379,s2:26380", "--redis-prefix", "reg"}, env(nil), io.Discard)
	opt, _ = redis.ParseURL(s.RedisURL)
	got = pluginRedis(s, opt)
	if got["host"] != "10.1.1.1" || got["database"] != nil || got["sentinel_master"] != "mymaster" || got["key_prefix"] != "reg" ||
		!reflect.DeepEqual(got["sentinel_nodes"], []any{map[string]any{"host": "s1", "port": 26379}, map[string]any{"host": "s2", "port": 26380}}) {
		t.Fatalf("overrides: %v", got)
	}
}

func TestPluginRedisTLSIsVerified(t *testing.T) {
	cases := []struct {
		args []string
		want map[string]any // ssl, ssl_verify, server_name (nil: absent)
	}{
		{[]string{"--redis-url", "rediss://redis.internal:6380/0"}, map[string]any{"ssl": true, "ssl_verify": true, "server_name": nil}},
		{[]string{"--redis-url", "rediss://redis.internal:6380/0", "--plugin-redis-ssl-verify=false"}, map[string]any{"ssl": true, "ssl_verify": false, "server_name": nil}},
		{[]string{"--redis-url", "rediss://redis.internal:6380/0", "--plugin-redis-host", "10.0.0.5"}, map[string]any{"ssl": true, "ssl_verify": true, "server_name": "redis.internal"}},
		{[]string{"--redis-url", "rediss://redis.internal:6380/0", "--plugin-redis-host", "10.0.0.5", "--plugin-redis-server-name", "r.example"}, map[string]any{"ssl": true, "ssl_verify": true, "server_name": "r.example"}},
		{[]string{"--redis-url", "redis://h:6379/0", "--plugin-redis-ssl"}, map[string]any{"ssl": true, "ssl_verify": true, "server_name": nil}},
		{[]string{"--redis-url", "redis://h:6379/0"}, map[string]any{"ssl": nil, "ssl_verify": nil, "server_name": nil}},
	}
	for _, tc := range cases {
		s, _, err := parseSettings("adminsvc", tc.args, env(nil), io.Discard)
		if err != nil {
			t.Fatal(err)
		}
		opt, err := redis.ParseURL(s.RedisURL)
		if err != nil {
			t.Fatal(err)
		}
		got := pluginRedis(s, opt)
		for k, want := range tc.want {
			if got[k] != want {
				t.Errorf("%v: %s = %v, want %v (config %v)", tc.args, k, got[k], want, got)
			}
		}
	}
	// The env variable works too.
	s, _, _ := parseSettings("adminsvc", []string{"--redis-url", "rediss://h:1/0"}, env(map[string]string{"SR_PLUGIN_REDIS_SSL_VERIFY": "false"}), io.Discard)
	opt, _ := redis.ParseURL(s.RedisURL)
	if got := pluginRedis(s, opt); got["ssl_verify"] != false {
		t.Fatalf("SR_PLUGIN_REDIS_SSL_VERIFY=false: %v", got)
	}
}

func TestRedactURL(t *testing.T) {
	for in, want := range map[string]string{
		"redis://user:secret@h:6379/0":     "redis://user:xxxxx@h:6379/0",
		"redis://:p@ssw0rd@host:6379":      "redis://:xxxxx@host:6379",
		"rediss://u:a@b@c@host/1":          "rediss://u:xxxxx@host/1",
		"redis://h:6379/0":                 "redis://h:6379/0",
		"http://admin:kong%40pw@kong:8001": "http://admin:xxxxx@kong:8001",
	} {
		got := redactURL(in)
		if got != want {
			t.Errorf("redactURL(%q) = %q, want %q", in, got, want)
		}
		for _, secret := range []string{"secret", "ssw0rd", "b@c", "kong%40pw", "kong@pw"} {
			if strings.Contains(got, secret) {
				t.Errorf("redactURL(%q) leaks %q", in, secret)
			}
		}
	}
}

func TestHelpAndStartLogHideKongAdminCredentials(t *testing.T) {
	var help bytes.Buffer
	e := env(map[string]string{"SR_KONG_ADMIN_URL": "http://admin:topsecret@kong:8001"})
	_, _, err := parseSettings("adminsvc", []string{"--help"}, e, &help)
	if !errors.Is(err, flag.ErrHelp) {
		t.Fatalf("--help: %v", err)
	}
	if strings.Contains(help.String(), "topsecret") || !strings.Contains(help.String(), "http://admin:xxxxx@kong:8001") {
		t.Fatalf("--help shows the Kong admin URL unredacted:\n%s", help.String())
	}
	// The value itself is still used unredacted.
	s, _, err := parseSettings("adminsvc", nil, e, io.Discard)
	if err != nil || s.KongAdminURL != "http://admin:topsecret@kong:8001" {
		t.Fatalf("setting %q, %v", s.KongAdminURL, err)
	}
}

func TestStartLogHidesSecrets(t *testing.T) {
	rs := redistest.Start(t, redistest.Options{Password: "p@ssw0rd"})
	u := rs.URL() // redis://:p@ssw0rd@127.0.0.1:port/0
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	var logs testbin.Buffer
	s, _, err := parseSettings("adminsvc", []string{"--listen", "127.0.0.1:0", "--redis-url", u,
		"--kong-admin-url", "http://admin:topsecret@127.0.0.1:1", "--reconcile-interval", "1h"}, env(nil), io.Discard)
	if err != nil {
		t.Fatal(err)
	}
	ready := make(chan string, 1)
	done := make(chan error, 1)
	go func() { done <- serve(ctx, s, slog.New(slog.NewJSONHandler(&logs, nil)), ready) }()
	select {
	case <-ready:
	case err := <-done:
		t.Fatalf("serve: %v", err)
	case <-time.After(20 * time.Second):
		t.Fatal("not ready")
	}
	cancel()
	<-done
	out := logs.String()
	if !strings.Contains(out, "adminsvc listening") {
		t.Fatalf("no start log: %s", out)
	}
	for _, secret := range []string{"ssw0rd", "topsecret"} {
		if strings.Contains(out, secret) {
			t.Fatalf("logs leak %q: %s", secret, out)
		}
	}
}

func TestBadEnvOverriddenByFlagIsNotAnError(t *testing.T) {
	e := env(map[string]string{"SR_RECONCILE_INTERVAL": "abc", "SR_RATE_LIMIT": "many", "SR_NO_MIGRATE": "perhaps"})
	s, _, err := parseSettings("adminsvc", []string{"--reconcile-interval", "5s", "--rate-limit", "7", "--no-migrate"}, e, io.Discard)
	if err != nil {
		t.Fatalf("flags given, env must not matter: %v", err)
	}
	if s.Reconcile != 5*time.Second || s.RateLimit != 7 || !s.NoMigrate {
		t.Fatalf("flags not applied: %+v", s)
	}
	// Without the flag the bad env value is still reported, naming the variable.
	_, _, err = parseSettings("adminsvc", []string{"--rate-limit", "7", "--no-migrate"}, e, io.Discard)
	if err == nil || !strings.Contains(err.Error(), "SR_RECONCILE_INTERVAL") {
		t.Fatalf("bad env without flag: %v", err)
	}
}

func TestCommandWordsAfterFlags(t *testing.T) {
	_, pos, err := parseSettings("adminsvc", []string{"--redis-url", "redis://x:1/0", "migrate", "--redis-prefix", "p", "status"}, env(nil), io.Discard)
	if err != nil || !reflect.DeepEqual(pos, []string{"migrate", "status"}) {
		t.Fatalf("positional %q, %v", pos, err)
	}
	_, pos, _ = parseSettings("adminsvc", []string{"import", "--", "-odd.json"}, env(nil), io.Discard)
	if !reflect.DeepEqual(pos, []string{"import", "-odd.json"}) {
		t.Fatalf("after --: %q", pos)
	}
}

func TestRunMigrateStatusAfterFlags(t *testing.T) {
	rs := redistest.Start(t, redistest.Options{})
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	var out, errOut bytes.Buffer
	// Before the fix this started the server (and never returned).
	code := run(ctx, []string{"--redis-url", rs.URL(), "migrate", "status"}, env(nil), &out, &errOut)
	if code != 0 || !strings.Contains(out.String(), "keyspace version") {
		t.Fatalf("code %d, stdout %q, stderr %q", code, out.String(), errOut.String())
	}
	out.Reset()
	errOut.Reset()
	if code := run(ctx, []string{"--redis-url", rs.URL(), "stray"}, env(nil), &out, &errOut); code != 2 {
		t.Fatalf("unknown command: code %d", code)
	}
	if code := run(ctx, []string{"serve", "--redis-url", rs.URL(), "extra"}, env(nil), &out, &errOut); code != 2 ||
		!strings.Contains(errOut.String(), "unexpected arguments") {
		t.Fatalf("leftover args: code %d, stderr %q", code, errOut.String())
	}
}

// SR_FAST_PATH: on by default, off turns the catch-all off, anything but
// on/off (or a boolean) is refused at start.
func TestFastPathSetting(t *testing.T) {
	for _, c := range []struct {
		env  map[string]string
		args []string
		want bool
	}{{nil, nil, true}, {map[string]string{"SR_FAST_PATH": "off"}, nil, false}, {map[string]string{"SR_FAST_PATH": "OFF"}, nil, false},
		{map[string]string{"SR_FAST_PATH": "false"}, nil, false}, {map[string]string{"SR_FAST_PATH": "off"}, []string{"--fast-path", "on"}, true}} {
		s, _, err := parseSettings("adminsvc", c.args, env(c.env), io.Discard)
		if err != nil {
			t.Fatalf("%v %v: %v", c.env, c.args, err)
		}
		if on, err := s.fastPathOn(); err != nil || on != c.want {
			t.Fatalf("%v %v: fast path %v %v, want %v", c.env, c.args, on, err, c.want)
		}
	}
	if _, _, err := parseSettings("adminsvc", nil, env(map[string]string{"SR_FAST_PATH": "sometimes"}), io.Discard); err == nil || !strings.Contains(err.Error(), "expected on or off") {
		t.Fatalf("SR_FAST_PATH=sometimes: %v", err)
	}
	var help bytes.Buffer
	_, _, _ = parseSettings("adminsvc", []string{"--help"}, env(nil), &help)
	if !strings.Contains(help.String(), "SR_FAST_PATH") || !strings.Contains(help.String(), `(default "on")`) {
		t.Fatalf("--help lacks SR_FAST_PATH:\n%s", help.String())
	}
}

// SR_PLUGIN_SCOPE: auto by default (kongsync resolves it by the Kong
// mode), service and global in any case, flags win, anything else is
// refused at start.
func TestPluginScopeSetting(t *testing.T) {
	for _, c := range []struct {
		env  map[string]string
		args []string
		want string
	}{{nil, nil, "service"}, {map[string]string{"SR_PLUGIN_SCOPE": "global"}, nil, "global"}, {map[string]string{"SR_PLUGIN_SCOPE": "Service"}, nil, "service"},
		{map[string]string{"SR_PLUGIN_SCOPE": "global"}, []string{"--plugin-scope", "service"}, "service"}, {nil, []string{"--plugin-scope=AUTO"}, "auto"}} {
		s, _, err := parseSettings("adminsvc", c.args, env(c.env), io.Discard)
		if err != nil {
			t.Fatalf("%v %v: %v", c.env, c.args, err)
		}
		if got, err := s.pluginScope(); err != nil || got != c.want {
			t.Fatalf("%v %v: plugin scope %q %v, want %q", c.env, c.args, got, err, c.want)
		}
	}
	for _, bad := range []string{"route", "on", " global"} {
		if _, _, err := parseSettings("adminsvc", nil, env(map[string]string{"SR_PLUGIN_SCOPE": bad}), io.Discard); err == nil ||
			!strings.Contains(err.Error(), "expected auto, service or global") {
			t.Fatalf("SR_PLUGIN_SCOPE=%q: %v", bad, err)
		}
	}
	var help bytes.Buffer
	_, _, _ = parseSettings("adminsvc", []string{"--help"}, env(nil), &help)
	_, entry, _ := strings.Cut(help.String(), "-plugin-scope")
	entry, _, _ = strings.Cut(entry, "\n  -")
	if !strings.Contains(entry, "SR_PLUGIN_SCOPE") || !strings.Contains(entry, `(default "service")`) {
		t.Fatalf("--help lacks SR_PLUGIN_SCOPE:\n%s", help.String())
	}
}
