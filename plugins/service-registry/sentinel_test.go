package main

import (
	"context"
	"strings"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/kong-service-registry/service-registry/internal/redistest"
)

func sentinelConfig(sn *redistest.Sentinel) RedisConfig {
	rc := RedisConfig{Host: "127.0.0.1", Port: 6379, Password: sn.Password(), TimeoutMs: 500,
		SentinelMaster: sn.MasterName(), KeyPrefix: "sr"}
	for _, s := range sn.Sentinels {
		rc.SentinelNodes = append(rc.SentinelNodes, SentinelNode{Host: "127.0.0.1", Port: s.Port})
	}
	return rc
}

// TestSentinelClientFollowsFailover: the plugin's own Sentinel client
// (retries off, short timeouts) reaches the promoted replica within a bound
// after the primary is killed.
func TestSentinelClientFollowsFailover(t *testing.T) {
	sn := redistest.StartSentinel(t, redistest.SentinelOptions{Replicas: 1, Sentinels: 1, Password: "pw"})
	rdb := newRedisClient(sentinelConfig(sn), 500*time.Millisecond)
	t.Cleanup(func() { _ = rdb.Close() })
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	if err := rdb.Set(ctx, "k", "v1", 0).Err(); err != nil {
		t.Fatal(err)
	}
	killed, promoted := sn.Failover(t, 20*time.Second)
	start := time.Now()
	var err error
	for deadline := start.Add(10 * time.Second); time.Now().Before(deadline); time.Sleep(20 * time.Millisecond) {
		if err = rdb.Set(ctx, "k", "v2", 0).Err(); err == nil {
			break
		}
	}
	if err != nil {
		t.Fatalf("no write through the promoted %s (killed %s) within 10 s: %v", promoted.Addr, killed.Addr, err)
	}
	t.Logf("writes reached the promoted replica %v after the promotion", time.Since(start))
	if got, err := promoted.Client().Get(ctx, "k").Result(); err != nil || got != "v2" {
		t.Fatalf("promoted node has %q %v", got, err)
	}
}

// TestSentinelTLSServerName: in Sentinel mode host is unused, so without an
// explicit server_name each TLS dial must check the name it dials (the
// default host 127.0.0.1 used to be checked against every sentinel's and
// primary's certificate); an explicit server_name is kept.
func TestSentinelTLSServerName(t *testing.T) {
	rc := RedisConfig{Host: "127.0.0.1", Port: 6379, SSL: true, SSLVerify: true, TimeoutMs: 20,
		SentinelMaster: "m", SentinelNodes: []SentinelNode{{Host: "sentinel-1.example", Port: 26379}}}
	name := func(rc RedisConfig) string {
		c := newRedisClient(rc, time.Second)
		defer c.Close()
		return c.(*redis.Client).Options().TLSConfig.ServerName
	}
	if got := name(rc); got != "" {
		t.Errorf("sentinel without server_name: ServerName %q, want empty (per dialed host)", got)
	}
	rc.ServerName = "redis.example"
	if got := name(rc); got != "redis.example" {
		t.Errorf("sentinel with server_name: ServerName %q", got)
	}
	standalone := RedisConfig{Host: "redis.internal", Port: 6379, SSL: true, TimeoutMs: 20}
	if got := name(standalone); got != "redis.internal" {
		t.Errorf("standalone: ServerName %q, want the host", got)
	}
}

// TestRedisEndpointSentinel: logs name the master and sentinels, not the
// unused host/port.
func TestRedisEndpointSentinel(t *testing.T) {
	rc := RedisConfig{Host: "127.0.0.1", Port: 6379, SentinelMaster: "mymaster",
		SentinelNodes: []SentinelNode{{Host: "10.0.0.1", Port: 26379}, {Host: "10.0.0.2", Port: 26380}}}
	if got := redisEndpoint(rc); got != "mymaster@10.0.0.1:26379,10.0.0.2:26380" {
		t.Errorf("sentinel endpoint %q", got)
	}
	if got := redisEndpoint(RedisConfig{Host: "r", Port: 1}); got != "r:1" || strings.Contains(got, "@") {
		t.Errorf("standalone endpoint %q", got)
	}
}
