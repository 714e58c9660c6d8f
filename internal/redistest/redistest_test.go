package redistest

import (
	"context"
	"fmt"
	"testing"

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
	n := func(id string) []redis.ClusterNode { return []redis.ClusterNode{{ID: id, Addr: "x"}} }
	full := []redis.ClusterSlot{{Start: 5461, End: 16383, Nodes: n("b")}, {Start: 0, End: 5460, Nodes: n("a")}}
	if v, why := slotView(full); why != "" || v != "0-5460:a,5461-16383:b," {
		t.Fatalf("full: %q %q", v, why)
	}
	for name, slots := range map[string][]redis.ClusterSlot{
		"gap":      {{Start: 0, End: 100, Nodes: n("a")}, {Start: 200, End: 16383, Nodes: n("b")}},
		"short":    {{Start: 0, End: 16000, Nodes: n("a")}},
		"no owner": {{Start: 0, End: 16383}},
		"empty":    nil,
	} {
		if _, why := slotView(slots); why == "" {
			t.Errorf("%s: accepted", name)
		}
	}
}
