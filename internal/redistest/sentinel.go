package redistest

import (
	"context"
	"fmt"
	"net"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"
)

// SentinelOptions configures StartSentinel.
type SentinelOptions struct {
	// Replicas is the number of replicas of the primary (default 1; a
	// failover needs at least one).
	Replicas int
	// Sentinels is the number of sentinel processes (default 3, so a
	// failover needs a real majority vote; 1 is allowed for speed).
	Sentinels int
	// Password is requirepass/masterauth of the data nodes and the
	// sentinels' auth-pass for them. The sentinels themselves need none.
	Password string
	// MasterName is the monitored name (default "mymaster").
	MasterName string
	// DownAfter is down-after-milliseconds (default 500 ms).
	DownAfter time.Duration
	// FailoverTimeout is failover-timeout (default 3 s).
	FailoverTimeout time.Duration
}

// Sentinel is a primary, its replicas and the sentinels monitoring it, all
// on loopback. Nodes keep their *Server identity across failovers: which one
// is the primary is asked of the sentinels (Primary), not remembered.
type Sentinel struct {
	t          testing.TB
	name       string
	password   string
	Data       []*Server // the first primary, then the replicas
	Sentinels  []*Server
	quorum     int
	downAfter  time.Duration
	failoverTO time.Duration
}

// StartSentinel starts the data nodes and sentinels and waits until every
// sentinel sees the primary, all its replicas and every other sentinel, so a
// failover can be voted on right away. Everything stops at test end.
func StartSentinel(t testing.TB, o SentinelOptions) *Sentinel {
	t.Helper()
	Require(t)
	if o.Replicas <= 0 {
		o.Replicas = 1
	}
	if o.Sentinels <= 0 {
		o.Sentinels = 3
	}
	if o.MasterName == "" {
		o.MasterName = "mymaster"
	}
	if o.DownAfter <= 0 {
		o.DownAfter = 500 * time.Millisecond
	}
	if o.FailoverTimeout <= 0 {
		o.FailoverTimeout = 3 * time.Second
	}
	sn := &Sentinel{t: t, name: o.MasterName, password: o.Password, quorum: o.Sentinels/2 + 1,
		downAfter: o.DownAfter, failoverTO: o.FailoverTimeout}
	primary := Start(t, Options{Password: o.Password})
	sn.Data = append(sn.Data, primary)
	for i := 0; i < o.Replicas; i++ {
		sn.Data = append(sn.Data, Start(t, Options{Password: o.Password,
			Extra: []string{fmt.Sprintf("replicaof 127.0.0.1 %d", primary.Port)}}))
	}
	for i := 0; i < o.Sentinels; i++ {
		sn.Sentinels = append(sn.Sentinels, sn.startSentinel(primary))
	}
	sn.waitReady(o.Replicas, 30*time.Second)
	return sn
}

func (sn *Sentinel) startSentinel(primary *Server) *Server {
	sn.t.Helper()
	extra := []string{
		fmt.Sprintf("sentinel monitor %s 127.0.0.1 %d %d", sn.name, primary.Port, sn.quorum),
		fmt.Sprintf("sentinel down-after-milliseconds %s %d", sn.name, sn.downAfter.Milliseconds()),
		fmt.Sprintf("sentinel failover-timeout %s %d", sn.name, sn.failoverTO.Milliseconds()),
		fmt.Sprintf("sentinel parallel-syncs %s 1", sn.name),
	}
	if sn.password != "" {
		extra = append(extra, fmt.Sprintf("sentinel auth-pass %s %s", sn.name, sn.password))
	}
	// A sentinel rewrites its own config file, which lives in its TempDir.
	s := &Server{t: sn.t, opts: Options{Extra: extra}, sentinel: true}
	s.opts.Dir = sn.t.TempDir()
	s.Dir = s.opts.Dir
	var err error
	for attempt := 0; attempt < 5; attempt++ {
		s.Port = FreePort(sn.t)
		s.Addr = net.JoinHostPort("127.0.0.1", strconv.Itoa(s.Port))
		if err = s.start(); err == nil {
			sn.t.Cleanup(s.Stop)
			return s
		}
	}
	sn.t.Fatalf("starting redis sentinel: %v", err)
	return nil
}

// waitReady polls every sentinel's SENTINEL MASTER until it counts all
// replicas and all other sentinels and sees the master as healthy.
func (sn *Sentinel) waitReady(replicas int, timeout time.Duration) {
	sn.t.Helper()
	deadline := time.Now().Add(timeout)
	var last string
	for time.Now().Before(deadline) {
		if last = sn.notReady(replicas); last == "" {
			return
		}
		time.Sleep(50 * time.Millisecond)
	}
	sn.t.Fatalf("redis sentinel not ready after %s: %s", timeout, last)
}

func (sn *Sentinel) notReady(replicas int) string {
	for _, s := range sn.Sentinels {
		m, err := sn.masterState(s)
		if err != nil {
			return fmt.Sprintf("%s: %v", s.Addr, err)
		}
		if m["flags"] != "master" || m["num-slaves"] != strconv.Itoa(replicas) ||
			m["num-other-sentinels"] != strconv.Itoa(len(sn.Sentinels)-1) {
			return fmt.Sprintf("%s: flags=%s num-slaves=%s num-other-sentinels=%s", s.Addr,
				m["flags"], m["num-slaves"], m["num-other-sentinels"])
		}
	}
	return ""
}

func (sn *Sentinel) masterState(s *Server) (map[string]string, error) {
	c := redis.NewSentinelClient(&redis.Options{Addr: s.Addr, DialTimeout: time.Second, ReadTimeout: time.Second})
	defer c.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
	defer cancel()
	return c.Master(ctx, sn.name).Result()
}

// MasterName is the name the sentinels monitor the primary under.
func (sn *Sentinel) MasterName() string { return sn.name }

// Password is the data nodes' password ("" when none).
func (sn *Sentinel) Password() string { return sn.password }

// Addrs lists the sentinel addresses (host:port), for FailoverOptions.SentinelAddrs.
func (sn *Sentinel) Addrs() []string {
	var a []string
	for _, s := range sn.Sentinels {
		a = append(a, s.Addr)
	}
	return a
}

// PrimaryAddr asks the running sentinels (first that answers) for the
// current primary's address via SENTINEL get-master-addr-by-name.
func (sn *Sentinel) PrimaryAddr() (string, error) {
	var lastErr error = ErrNotFound
	for _, s := range sn.Sentinels {
		if !s.Running() {
			continue
		}
		addr, err := sn.askPrimary(s)
		if err == nil {
			return addr, nil
		}
		lastErr = err
	}
	return "", lastErr
}

func (sn *Sentinel) askPrimary(s *Server) (string, error) {
	c := redis.NewSentinelClient(&redis.Options{Addr: s.Addr, DialTimeout: time.Second, ReadTimeout: time.Second})
	defer c.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
	defer cancel()
	hp, err := c.GetMasterAddrByName(ctx, sn.name).Result()
	if err != nil {
		return "", fmt.Errorf("sentinel %s: get-master-addr-by-name: %w", s.Addr, err)
	}
	if len(hp) != 2 {
		return "", fmt.Errorf("sentinel %s: get-master-addr-by-name: %v", s.Addr, hp)
	}
	return net.JoinHostPort(hp[0], hp[1]), nil
}

// Primary is the data node the sentinels currently name as primary.
func (sn *Sentinel) Primary(t testing.TB) *Server {
	t.Helper()
	addr, err := sn.PrimaryAddr()
	if err != nil {
		t.Fatalf("redis sentinel: current primary: %v", err)
	}
	for _, s := range sn.Data {
		if s.Addr == addr {
			return s
		}
	}
	t.Fatalf("redis sentinel: primary %s is none of our nodes", addr)
	return nil
}

// Failover kills the current primary (SIGKILL) and waits up to timeout
// until every running sentinel names another node as primary and that node
// says it is a master. It returns the killed and the promoted node.
func (sn *Sentinel) Failover(t testing.TB, timeout time.Duration) (killed, promoted *Server) {
	t.Helper()
	killed = sn.Primary(t)
	killed.Kill()
	return killed, sn.WaitPromoted(t, killed.Addr, timeout)
}

// WaitPromoted polls until every running sentinel names a primary other
// than old and that node's ROLE is master.
func (sn *Sentinel) WaitPromoted(t testing.TB, old string, timeout time.Duration) *Server {
	t.Helper()
	deadline := time.Now().Add(timeout)
	last := "no sentinel asked yet"
	for time.Now().Before(deadline) {
		var s *Server
		if s, last = sn.promoted(old); s != nil {
			return s
		}
		time.Sleep(50 * time.Millisecond)
	}
	t.Fatalf("redis sentinel: no replica promoted within %s: %s", timeout, last)
	return nil
}

func (sn *Sentinel) promoted(old string) (*Server, string) {
	addr := ""
	for _, s := range sn.Sentinels {
		if !s.Running() {
			continue
		}
		a, err := sn.askPrimary(s)
		if err != nil {
			return nil, err.Error()
		}
		if a == old {
			return nil, fmt.Sprintf("sentinel %s still names %s", s.Addr, old)
		}
		if addr != "" && a != addr {
			return nil, fmt.Sprintf("sentinels disagree: %s vs %s", addr, a)
		}
		addr = a
	}
	var node *Server
	for _, s := range sn.Data {
		if s.Addr == addr {
			node = s
		}
	}
	if node == nil {
		return nil, fmt.Sprintf("primary %q is none of our nodes", addr)
	}
	c := redis.NewClient(&redis.Options{Addr: node.Addr, Password: sn.password, DialTimeout: time.Second, ReadTimeout: time.Second, MaxRetries: -1})
	defer c.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
	defer cancel()
	role, err := c.Do(ctx, "ROLE").Slice()
	if err != nil || len(role) == 0 || role[0] != "master" {
		return nil, fmt.Sprintf("%s ROLE: %v %v", addr, role, err)
	}
	return node, ""
}

// Client returns a go-redis failover client (follows the sentinels'
// primary), closed at test end.
func (sn *Sentinel) Client(t testing.TB) *redis.Client {
	c := redis.NewFailoverClient(&redis.FailoverOptions{MasterName: sn.name, SentinelAddrs: sn.Addrs(), Password: sn.password})
	t.Cleanup(func() { _ = c.Close() })
	return c
}

// String describes the topology, for test logs.
func (sn *Sentinel) String() string {
	var data []string
	for _, s := range sn.Data {
		data = append(data, s.Addr)
	}
	return fmt.Sprintf("sentinel %q data=[%s] sentinels=[%s]", sn.name, strings.Join(data, " "), strings.Join(sn.Addrs(), " "))
}
