package redistest

import (
	"context"
	"errors"
	"fmt"
	"net"
	"sort"
	"strconv"
	"strings"
	"time"

	"github.com/redis/go-redis/v9"
)

// Cluster is a small Redis Cluster: masters, each with Replicas replicas.
type Cluster struct {
	Masters  []*Server
	Replicas []*Server
	password string
}

// ClusterOptions configures StartCluster.
type ClusterOptions struct {
	Masters           int // default 3
	ReplicasPerMaster int // default 0
	Password          string
	AppendFsync       string
}

// StartCluster starts a cluster with all 16384 slots assigned and waits until
// every node reports cluster_state:ok.
func StartCluster(t TB, o ClusterOptions) *Cluster {
	t.Helper()
	if o.Masters == 0 {
		o.Masters = 3
	}
	c := &Cluster{password: o.Password}
	n := o.Masters * (1 + o.ReplicasPerMaster)
	nodes := make([]*Server, n)
	for i := range nodes {
		nodes[i] = Start(t, Options{Cluster: true, Password: o.Password, AppendFsync: o.AppendFsync})
	}
	c.Masters = nodes[:o.Masters]
	c.Replicas = nodes[o.Masters:]
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	cl := func(s *Server) *redis.Client {
		return redis.NewClient(&redis.Options{Addr: s.Addr, Password: o.Password})
	}
	// Assign slots evenly to masters.
	per := 16384 / o.Masters
	for i, m := range c.Masters {
		lo, hi := i*per, (i+1)*per-1
		if i == o.Masters-1 {
			hi = 16383
		}
		r := cl(m)
		err := r.Do(ctx, "CLUSTER", "ADDSLOTSRANGE", lo, hi).Err()
		r.Close()
		if err != nil {
			t.Fatalf("cluster addslotsrange on %s: %v", m.Addr, err)
		}
	}
	// Everyone meets the first node.
	first := nodes[0]
	for _, s := range nodes[1:] {
		r := cl(s)
		err := r.ClusterMeet(ctx, "127.0.0.1", strconv.Itoa(first.Port)).Err()
		r.Close()
		if err != nil {
			t.Fatalf("cluster meet: %v", err)
		}
	}
	// Replicas follow their masters.
	for i, rep := range c.Replicas {
		master := c.Masters[i%o.Masters]
		id := nodeID(t, master)
		r := cl(rep)
		var err error
		for time.Now().Before(deadlineOf(ctx)) {
			// The replica must know the master before it can replicate it.
			if err = r.Do(ctx, "CLUSTER", "REPLICATE", id).Err(); err == nil {
				break
			}
			time.Sleep(20 * time.Millisecond)
		}
		r.Close()
		if err != nil {
			t.Fatalf("cluster replicate: %v", err)
		}
	}
	c.WaitOK(t, 30*time.Second)
	return c
}

func deadlineOf(ctx context.Context) time.Time {
	d, _ := ctx.Deadline()
	return d
}

func nodeID(t TB, s *Server) string {
	r := redis.NewClient(&redis.Options{Addr: s.Addr, Password: s.opts.Password})
	defer r.Close()
	id, err := r.Do(context.Background(), "CLUSTER", "MYID").Text()
	if err != nil {
		t.Fatalf("cluster myid: %v", err)
	}
	return id
}

// WaitOK polls until every running node reports cluster_state:ok and its
// CLUSTER SLOTS covers all 16384 slots with the same owner per slot as
// every other node's. cluster_state:ok alone is not enough: a node can
// report ok while its view of who serves a slot is still converging, and a
// client that fetched that view gets CLUSTERDOWN or MOVED loops.
func (c *Cluster) WaitOK(t TB, timeout time.Duration) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	var last string
	for time.Now().Before(deadline) {
		if last = c.notOK(); last == "" {
			return
		}
		time.Sleep(20 * time.Millisecond)
	}
	t.Fatalf("redis cluster not ok after %s: %s", timeout, last)
}

// notOK says why the cluster is not settled, or "" when it is.
func (c *Cluster) notOK() string {
	var first, firstAddr string
	for _, s := range c.Nodes() {
		if !s.Running() {
			continue
		}
		ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
		r := redis.NewClient(&redis.Options{Addr: s.Addr, Password: c.password})
		info, err := r.ClusterInfo(ctx).Result()
		var shards []redis.ClusterShard
		if err == nil {
			shards, err = r.ClusterShards(ctx).Result()
		}
		r.Close()
		cancel()
		if err != nil || !strings.Contains(info, "cluster_state:ok") {
			return fmt.Sprintf("%s: %v %s", s.Addr, err, firstLine(info))
		}
		view, why := slotView(shards)
		if why != "" {
			return s.Addr + ": " + why
		}
		if first == "" {
			first, firstAddr = view, s.Addr
		} else if view != first {
			return fmt.Sprintf("slot owners differ: %s sees %s, %s sees %s", firstAddr, first, s.Addr, view)
		}
	}
	return ""
}

// slotRange is one range of slots and its master.
type slotRange struct {
	start, end int64
	master     redis.Node
}

// masters lists every slot range of CLUSTER SHARDS with the master serving
// it (a zero Node when the shard has none), in slot order.
func masters(shards []redis.ClusterShard) []slotRange {
	var out []slotRange
	for _, sh := range shards {
		var m redis.Node
		for _, n := range sh.Nodes {
			if n.Role == "master" {
				m = n
			}
		}
		for _, r := range sh.Slots {
			out = append(out, slotRange{start: r.Start, end: r.End, master: m})
		}
	}
	sort.Slice(out, func(i, j int) bool { return out[i].start < out[j].start })
	return out
}

// slotView renders CLUSTER SHARDS as "start-end:owner-id,..." in slot order,
// or says why it does not cover every slot exactly once.
func slotView(shards []redis.ClusterShard) (string, string) {
	var b strings.Builder
	next := int64(0)
	for _, sl := range masters(shards) {
		if sl.start != next {
			return "", fmt.Sprintf("slots %d-%d not served", next, sl.start-1)
		}
		if sl.master.ID == "" {
			return "", fmt.Sprintf("slots %d-%d have no owner", sl.start, sl.end)
		}
		fmt.Fprintf(&b, "%d-%d:%s,", sl.start, sl.end, sl.master.ID)
		next = sl.end + 1
	}
	if next != 16384 {
		return "", fmt.Sprintf("slots %d-16383 not served", next)
	}
	return b.String(), ""
}

func firstLine(s string) string {
	line, _, _ := strings.Cut(s, "\n")
	return line
}

// Nodes lists masters then replicas.
func (c *Cluster) Nodes() []*Server {
	return append(append([]*Server{}, c.Masters...), c.Replicas...)
}

// Addrs lists every node address, for ClusterOptions.Addrs.
func (c *Cluster) Addrs() []string {
	var a []string
	for _, s := range c.Nodes() {
		a = append(a, s.Addr)
	}
	return a
}

// Client returns a cluster client, closed at test end.
func (c *Cluster) Client(t TB) *redis.ClusterClient {
	cc := redis.NewClusterClient(&redis.ClusterOptions{Addrs: c.Addrs(), Password: c.password})
	t.Cleanup(func() { _ = cc.Close() })
	return cc
}

// ErrNotFound is returned by lookups that find no node.
var ErrNotFound = errors.New("redistest: not found")

// MasterFor returns the master serving key's slot.
func (c *Cluster) MasterFor(t TB, key string) (*Server, error) {
	cc := redis.NewClusterClient(&redis.ClusterOptions{Addrs: c.Addrs(), Password: c.password})
	defer cc.Close()
	var addr string
	slot, err := cc.ClusterKeySlot(context.Background(), key).Result()
	if err != nil {
		return nil, err
	}
	shards, err := cc.ClusterShards(context.Background()).Result()
	if err != nil {
		return nil, err
	}
	for _, s := range masters(shards) {
		if s.start <= slot && slot <= s.end && s.master.ID != "" {
			addr = net.JoinHostPort(s.master.IP, strconv.FormatInt(s.master.Port, 10))
		}
	}
	for _, s := range c.Nodes() {
		if s.Addr == addr {
			return s, nil
		}
	}
	return nil, ErrNotFound
}
