package redisconn

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/kong-service-registry/service-registry/internal/redistest"
)

func TestModeAndCheck(t *testing.T) {
	for _, c := range []struct {
		cfg  Config
		mode Mode
		err  error
	}{
		{Config{Addr: "h:1"}, Standalone, nil},
		{Config{MasterName: "m", SentinelAddrs: []string{"s:26379"}}, Sentinel, nil},
		{Config{ClusterAddrs: []string{"c:7000"}}, Cluster, nil},
		{Config{MasterName: "m"}, Sentinel, ErrMasterWithoutSentinels},
		{Config{SentinelAddrs: []string{"s:26379"}}, Standalone, ErrSentinelsWithoutMaster},
		{Config{MasterName: "m", SentinelAddrs: []string{"s:1"}, ClusterAddrs: []string{"c:1"}}, Cluster, ErrSentinelAndCluster},
	} {
		if got := c.cfg.Mode(); got != c.mode {
			t.Errorf("%+v: mode %s, want %s", c.cfg, got, c.mode)
		}
		if err := c.cfg.Check(); !errors.Is(err, c.err) {
			t.Errorf("%+v: check %v, want %v", c.cfg, err, c.err)
		}
		if _, err := New(c.cfg); !errors.Is(err, c.err) {
			t.Errorf("%+v: New %v, want %v", c.cfg, err, c.err)
		}
	}
}

// The certificate name: the operator's, else the host dialled for one
// server or a Cluster seed, and in Sentinel mode the host of each connection
// (Addr is unused there).
func TestTLSServerName(t *testing.T) {
	if (Config{Addr: "h:1"}).TLSConfig() != nil {
		t.Fatal("TLS without TLS")
	}
	for _, c := range []struct {
		cfg  Config
		name string
	}{
		{Config{Addr: "redis.internal:6380", TLS: true}, "redis.internal"},
		{Config{Addr: "[::1]:6380", TLS: true}, "::1"},
		{Config{Addr: "redis.internal:6380", TLS: true, ServerName: "r.example"}, "r.example"},
		{Config{Addr: "127.0.0.1:6379", MasterName: "m", SentinelAddrs: []string{"s:1"}, TLS: true}, ""},
		{Config{Addr: "127.0.0.1:6379", MasterName: "m", SentinelAddrs: []string{"s:1"}, TLS: true, ServerName: "r.example"}, "r.example"},
	} {
		tc := c.cfg.TLSConfig()
		if tc == nil || tc.ServerName != c.name || tc.InsecureSkipVerify {
			t.Errorf("%+v: %+v, want verified name %q", c.cfg, tc, c.name)
		}
	}
	if !(Config{Addr: "h:1", TLS: true, SkipVerify: true}).TLSConfig().InsecureSkipVerify {
		t.Fatal("SkipVerify ignored")
	}
}

func TestFromURL(t *testing.T) {
	c, err := FromURL("rediss://u:pw@redis.internal:6380/3")
	if err != nil {
		t.Fatal(err)
	}
	if c.Addr != "redis.internal:6380" || c.Username != "u" || c.Password != "pw" || c.DB != 3 || !c.TLS || c.ServerName != "" || c.SkipVerify {
		t.Fatalf("%+v", c)
	}
	// The URL's host is not an operator's name: in Sentinel mode each
	// connection checks the host it dials.
	c.MasterName, c.SentinelAddrs = "m", []string{"s:1"}
	if n := c.TLSConfig().ServerName; n != "" {
		t.Fatalf("sentinel over a rediss URL verifies %q", n)
	}
	if c, _ := FromURL("rediss://h:1/0?skip_verify=true"); !c.SkipVerify {
		t.Fatalf("skip_verify: %+v", c)
	}
	if _, err := FromURL("http://h"); err == nil {
		t.Fatal("http url accepted")
	}
	if got := SplitAddrs(" a:1, ,b:2,"); len(got) != 2 || got[0] != "a:1" || got[1] != "b:2" {
		t.Fatalf("SplitAddrs: %q", got)
	}
}

func TestNewTalksToRedis(t *testing.T) {
	srv := redistest.Start(t, redistest.Options{Password: "pw"})
	cfg, err := FromURL(srv.URL())
	if err != nil {
		t.Fatal(err)
	}
	cfg.Timeout, cfg.MaxRetries, cfg.ContextTimeout = time.Second, -1, true
	rdb, err := New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	defer rdb.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := rdb.Ping(ctx).Err(); err != nil {
		t.Fatal(err)
	}
}

// TestNoRetriesDialsOnce: with MaxRetries -1 a refused Redis costs one dial
// (about a millisecond), not go-redis' 5 dials 100 ms apart.
func TestNoRetriesDialsOnce(t *testing.T) {
	srv := redistest.Start(t, redistest.Options{})
	srv.Kill()
	rdb, err := New(Config{Addr: srv.Addr, Timeout: time.Second, MaxRetries: -1, ContextTimeout: true})
	if err != nil {
		t.Fatal(err)
	}
	defer rdb.Close()
	t0 := time.Now()
	err = rdb.Ping(context.Background()).Err()
	took := time.Since(t0)
	if err == nil {
		t.Fatal("ping succeeded against a killed redis")
	}
	if took > 200*time.Millisecond {
		t.Fatalf("a refused dial took %s, want one attempt (go-redis' retries take 400 ms)", took)
	}
}
