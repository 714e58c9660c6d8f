package redistest

import (
	"context"
	"fmt"
	"testing"
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
