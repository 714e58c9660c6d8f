package redistest

import (
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"
)

func TestStandaloneRestartKeepsAOF(t *testing.T) {
	s := Start(t, Options{AppendFsync: "always", Password: "s3cret"})
	ctx := context.Background()
	c := s.Client()
	if err := c.Set(ctx, "k", "v", 0).Err(); err != nil {
		t.Fatal(err)
	}
	s.Kill()
	if s.Running() {
		t.Fatal("still running after Kill")
	}
	s.Restart()
	if got, err := c.Get(ctx, "k").Result(); err != nil || got != "v" {
		t.Fatalf("after restart: %q %v", got, err)
	}
	if s.CommandCalls()["get"] < 1 {
		t.Fatalf("commandstats did not count GET: %v", s.CommandCalls())
	}
}

func TestCluster(t *testing.T) {
	cl := StartCluster(t, ClusterOptions{})
	c := cl.Client(t)
	ctx := context.Background()
	for i := 0; i < 50; i++ {
		if err := c.Set(ctx, fmt.Sprintf("key-%d", i), i, 0).Err(); err != nil {
			t.Fatal(err)
		}
	}
	if _, err := cl.MasterFor(t, "key-1"); err != nil {
		t.Fatal(err)
	}
}

func TestSlotViewNeedsFullCoverage(t *testing.T) {
	shard := func(id string, ranges ...int64) redis.ClusterShard {
		sh := redis.ClusterShard{Nodes: []redis.Node{{ID: id + "-replica", Role: "replica"}, {ID: id, Role: "master"}}}
		for i := 0; i+1 < len(ranges); i += 2 {
			sh.Slots = append(sh.Slots, redis.SlotRange{Start: ranges[i], End: ranges[i+1]})
		}
		return sh
	}
	full := []redis.ClusterShard{shard("b", 5461, 16383), shard("a", 0, 5460)}
	if v, why := slotView(full); why != "" || v != "0-5460:a,5461-16383:b," {
		t.Fatalf("full: %q %q", v, why)
	}
	for name, shards := range map[string][]redis.ClusterShard{
		"gap":      {shard("a", 0, 100), shard("b", 200, 16383)},
		"short":    {shard("a", 0, 16000)},
		"no owner": {{Slots: []redis.SlotRange{{Start: 0, End: 16383}}, Nodes: []redis.Node{{ID: "r", Role: "replica"}}}},
		"empty":    nil,
	} {
		if _, why := slotView(shards); why == "" {
			t.Errorf("%s: accepted", name)
		}
	}
}

func TestSentinelFailover(t *testing.T) {
	sn := StartSentinel(t, SentinelOptions{Replicas: 2, Sentinels: 3, Password: "s3cret"})
	t.Log(sn)
	ctx := context.Background()
	first := sn.Primary(t)
	if first != sn.Data[0] {
		t.Fatalf("primary %s, want the first node %s", first.Addr, sn.Data[0].Addr)
	}
	c := sn.Client(t)
	if err := c.Set(ctx, "k", "before", 0).Err(); err != nil {
		t.Fatal(err)
	}
	// WAIT makes the write reach the replicas before the primary dies.
	if n, err := first.Client().Do(ctx, "WAIT", 2, 5000).Int(); err != nil || n != 2 {
		t.Fatalf("WAIT: %d %v", n, err)
	}
	start := time.Now()
	killed, promoted := sn.Failover(t, 20*time.Second)
	t.Logf("failover %s -> %s in %s", killed.Addr, promoted.Addr, time.Since(start))
	if promoted == killed || killed.Running() {
		t.Fatalf("killed %s, promoted %s", killed.Addr, promoted.Addr)
	}
	if got := sn.Primary(t); got != promoted {
		t.Fatalf("Primary() = %s after failover, want %s", got.Addr, promoted.Addr)
	}
	// The failover client follows the sentinels to the promoted node.
	deadline := time.Now().Add(10 * time.Second)
	var err error
	for time.Now().Before(deadline) {
		if err = c.Set(ctx, "k", "after", 0).Err(); err == nil {
			break
		}
		time.Sleep(50 * time.Millisecond)
	}
	if err != nil {
		t.Fatalf("write after failover: %v", err)
	}
	if got, err := promoted.Client().Get(ctx, "k").Result(); err != nil || got != "after" {
		t.Fatalf("promoted node has %q %v", got, err)
	}
}

func TestSentinelSingle(t *testing.T) {
	sn := StartSentinel(t, SentinelOptions{Sentinels: 1})
	if len(sn.Addrs()) != 1 || len(sn.Data) != 2 || sn.MasterName() != "mymaster" {
		t.Fatalf("topology: %s", sn)
	}
	if addr, err := sn.PrimaryAddr(); err != nil || addr != sn.Data[0].Addr {
		t.Fatalf("PrimaryAddr = %q %v, want %s", addr, err, sn.Data[0].Addr)
	}
}

func TestMain(m *testing.M) { Main(m) }

// Every caller gets the one cluster of the process, working.
func TestSharedClusterIsShared(t *testing.T) {
	a, b := SharedCluster(t), SharedCluster(t)
	if a != b {
		t.Fatal("two shared clusters")
	}
	if err := a.Client(t).Set(context.Background(), "shared-"+t.Name(), 1, 0).Err(); err != nil {
		t.Fatal(err)
	}
}
