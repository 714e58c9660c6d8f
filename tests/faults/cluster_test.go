package faults

import (
	"context"
	"fmt"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/kong-service-registry/service-registry/internal/redistest"
	"github.com/kong-service-registry/service-registry/internal/registry"
	"github.com/redis/go-redis/v9"
)

// Redis Cluster primary failover under traffic: the master holding the
// "orders" slot is SIGKILLed, its replica is promoted. Plugin traffic keeps
// being routed from cache throughout; registrations through adminsvc fail
// (503, bounded) only until the promotion, then succeed without restarting
// anything; a registry change after the failover reaches the plugin.
func TestClusterFailoverUnderTraffic(t *testing.T) {
	cl := redistest.StartCluster(t, redistest.ClusterOptions{Masters: 3, ReplicasPerMaster: 1})
	st := registry.NewStore(cl.Client(t), registry.Options{})
	a, b, c := newBackend(t, "a"), newBackend(t, "b"), newBackend(t, "c")
	putInstance(t, st, a)
	putInstance(t, st, b)

	var nodes []any
	for _, addr := range cl.Addrs() {
		h, p := hostPort(addr)
		nodes = append(nodes, map[string]any{"ip": h, "port": p})
	}
	g := startGateway(t, map[string]any{"registry": "redis", "service": "orders", "cache_ttl_ms": 300,
		"redis": map[string]any{"cluster_nodes": nodes, "timeout_ms": 300}})
	adm := StartAdminsvc(t, AdminOptions{RedisURL: "redis://" + cl.Masters[0].Addr + "/0",
		Env: map[string]string{"SR_REDIS_CLUSTER_ADDRS": strings.Join(cl.Addrs(), ",")}})
	api := newAPI(adm.URL)
	waitHealthy(t, api, 15*time.Second)

	tr := g.startTraffic(2, "/orders")
	defer tr.Stop()
	waitUntil(t, 10*time.Second, "warm traffic", func() bool { return tr.sent.Load() >= 50 })
	tr.take()

	stop := make(chan struct{})
	var faultEnd atomic.Int64
	done := make(chan *loadResult)
	go func() { done <- registerLoad(api, 2, stop, &faultEnd, 5000) }()
	waitUntil(t, 10*time.Second, "registrations before the failover", func() bool { return len(api.routes(t)) >= 20 })

	old, err := cl.MasterFor(t, st.VersionKey("orders"))
	if err != nil {
		t.Fatal(err)
	}
	// A replica only fails over once it has synced (data age): Redis 7
	// delays the first diskless sync by 5 s (repl-diskless-sync-delay), and
	// StartCluster returns before that.
	waitUntil(t, 20*time.Second, "replicas in sync", func() bool {
		for _, r := range cl.Replicas {
			if r.Info("replication")["master_link_status"] != "up" {
				return false
			}
		}
		return true
	})
	t0 := time.Now()
	old.Kill()
	var promoted *redistest.Server
	var lastView string
	promotedOK := waitFor(20*time.Second, func() bool {
		m, err := cl.MasterFor(t, st.VersionKey("orders"))
		if err != nil || m == old || !m.Running() {
			lastView = fmt.Sprintf("master %v err %v", m, err)
			if m != nil {
				lastView = fmt.Sprintf("master %s (old %s) err %v", m.Addr, old.Addr, err)
			}
			return false
		}
		promoted = m
		return true
	})
	if !promotedOK {
		var nodes strings.Builder
		for _, n := range cl.Nodes() {
			if n.Running() {
				r := redis.NewClient(&redis.Options{Addr: n.Addr})
				out, err := r.ClusterNodes(context.Background()).Result()
				r.Close()
				fmt.Fprintf(&nodes, "%s: %v\n%s\n", n.Addr, err, out)
			}
		}
		t.Fatalf("no replica promoted for the orders slot after 20 s: %s\n%s", lastView, nodes.String())
	}
	failover := time.Since(t0)
	faultEnd.Store(time.Now().UnixNano())
	// Registrations recover by themselves (go-redis follows MOVED/refreshes slots).
	time.Sleep(1500 * time.Millisecond)
	close(stop)
	res := <-done

	// A change made through adminsvc after the failover (a write to the
	// failed-over slot) succeeds, then reaches the plugin.
	t1 := time.Now()
	var last apiResp
	registryOK := waitFor(10*time.Second, func() bool {
		last = api.do("PUT", "/v1/services/orders/instances/c", map[string]any{"address": c.addr(), "weight": 1})
		return last.Status == 200
	})
	registryRecovery := time.Since(t1)
	if !registryOK {
		// Still check the plugin: write with a client that reloads its
		// slot map every half second.
		own := redis.NewClusterClient(&redis.ClusterOptions{Addrs: cl.Addrs(), ClusterStateReloadInterval: 500 * time.Millisecond})
		defer own.Close()
		ownStore := registry.NewStore(own, registry.Options{})
		t1 = time.Now()
		waitUntil(t, 10*time.Second, "a write with a reloading cluster client", func() bool {
			ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
			defer cancel()
			_, err := ownStore.PutInstance(ctx, "orders", registry.Instance{ID: c.id, Address: c.addr(), Weight: 1})
			return err == nil
		})
	}
	pluginOK := waitFor(10*time.Second, func() bool { return c.hits.Load() > 0 })
	pluginRecovery := time.Since(t1)
	tr.Stop()
	s, _, lat := tr.take()

	have, _ := api.tryRoutes()
	lost := -1 // unknown: the registry could not list
	if have != nil {
		lost = 0
		for _, k := range res.ackedKeys {
			if !have[k] {
				lost++
			}
		}
	}
	t.Logf("RESULT fault=cluster-primary-failover promoted=%s failover=%v plugin_requests=%d statuses=%v max_latency=%v registrations_sent=%d acked=%d failed=%d hung=%d acked_lost=%d orders_slot_write_after=%v change_visible_after=%v",
		promoted.Addr, failover, len(lat), s, maxDur(lat), res.sent, res.acked, res.failed, res.hung, lost, registryRecovery, pluginRecovery)
	if !registryOK {
		// go-redis's ClusterClient keeps sending this slot's commands to the
		// dead master until its state reload (ClusterStateReloadInterval,
		// 60 s by default): no MOVED ever arrives to trigger an early one.
		t.Errorf("bug: adminsvc cannot write to the failed-over slot 10 s after the promotion (last: %d %s); fix: set ClusterStateReloadInterval (e.g. 1s) in adminsvc/redis.go newRedis", last.Status, last.Raw)
	}
	if !pluginOK {
		t.Errorf("bug: the plugin does not see a change made 10 s after the failover; fix: set ClusterStateReloadInterval (e.g. 1s) in the plugin's cluster client (plugins/service-registry/backends.go)")
	}
	if len(s) != 1 || s[200] == 0 {
		t.Errorf("plugin statuses during failover: %v (want only 200)", s)
	}
	if m := maxDur(lat); m > 2*time.Second {
		t.Errorf("a proxied request took %v", m)
	}
	if res.hung > 0 {
		t.Errorf("%d registrations hung", res.hung)
	}
	// Redis Cluster replicates asynchronously: a write acknowledged by the
	// old master just before SIGKILL can be lost. Report it; the AOF tests
	// carry the zero-loss promise for a single primary.
	if lost > 0 {
		t.Logf("note: %d acknowledged registrations lost in the failover (asynchronous replication)", lost)
	}
}
