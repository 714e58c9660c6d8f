// Package redistest starts real, throwaway redis-server processes for tests:
// standalone servers, small Redis Clusters and Sentinel deployments (a
// primary, replicas and `redis-server --sentinel` processes) on free
// loopback ports, with the controls fault tests need (kill, restart, pause,
// resume, kill the primary and wait for a promotion).
//
// It never mocks Redis. Every process it starts is stopped by t.Cleanup.
// It must not be imported by non-test code.
package redistest

import (
	"bufio"
	"context"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/redis/go-redis/v9"
)

// Options configures a server. The zero value is a plain in-memory server.
type Options struct {
	// Password sets requirepass (and masterauth for cluster replicas).
	Password string
	// AppendOnly turns on AOF persistence with the given fsync policy
	// ("always", "everysec" or "no"); empty means no AOF.
	AppendFsync string
	// Dir is the working directory (AOF/RDB files). Empty: a fresh t.TempDir().
	// Reuse a Dir to restart "the same" server with its data.
	Dir string
	// Port to listen on; 0 picks a free one.
	Port int
	// Extra redis.conf directives, as "name value" lines.
	Extra []string
	// Cluster enables cluster mode (used by StartCluster).
	Cluster bool
}

// Server is one running (or stopped) redis-server process.
type Server struct {
	t    TB
	opts Options
	Addr string
	Port int
	Dir  string

	mu  sync.Mutex
	cmd *exec.Cmd

	// sentinel runs the process as `redis-server <conf> --sentinel`.
	sentinel bool
}

// Binary is the redis-server executable; REDIS_SERVER overrides it.
func Binary() string {
	if b := os.Getenv("REDIS_SERVER"); b != "" {
		return b
	}
	return "redis-server"
}

// Require skips nothing: a missing redis-server is a hard failure, because
// the tests claim real Redis behaviour. .ci/run installs it.
func Require(t TB) {
	t.Helper()
	if _, err := exec.LookPath(Binary()); err != nil {
		t.Fatalf("redis-server not found on PATH (install it: apt-get install redis-server): %v", err)
	}
}

// Start starts a standalone server and registers its cleanup.
func Start(t TB, opts Options) *Server {
	t.Helper()
	Require(t)
	if opts.Dir == "" {
		opts.Dir = t.TempDir()
	}
	s := &Server{t: t, opts: opts, Dir: opts.Dir}
	var err error
	for attempt := 0; attempt < 5; attempt++ {
		port := opts.Port
		if port == 0 {
			port = FreePort(t) // also checks port+10000, the cluster bus
		}
		s.Port = port
		s.Addr = net.JoinHostPort("127.0.0.1", strconv.Itoa(port))
		if err = s.start(); err == nil {
			t.Cleanup(s.Stop)
			return s
		}
		if opts.Port != 0 {
			break
		}
	}
	t.Fatalf("starting redis-server: %v", err)
	return nil
}

func (s *Server) config() string {
	var b strings.Builder
	fmt.Fprintf(&b, "port %d\nbind 127.0.0.1\nprotected-mode no\ndir %s\n", s.Port, s.Dir)
	b.WriteString("save \"\"\ndaemonize no\nloglevel warning\nlogfile \"\"\n")
	// Replicas sync at once (Redis 7 waits 5 s for more replicas by default):
	// a replica that has not synced cannot take over in a failover test.
	b.WriteString("repl-diskless-sync-delay 0\n")
	if s.opts.Password != "" {
		fmt.Fprintf(&b, "requirepass %s\nmasterauth %s\n", s.opts.Password, s.opts.Password)
	}
	if s.opts.AppendFsync != "" {
		fmt.Fprintf(&b, "appendonly yes\nappendfsync %s\n", s.opts.AppendFsync)
	}
	if s.opts.Cluster {
		fmt.Fprintf(&b, "cluster-enabled yes\ncluster-config-file nodes-%d.conf\ncluster-node-timeout 1000\n", s.Port)
		fmt.Fprintf(&b, "cluster-port %d\n", s.clusterPort())
		b.WriteString("cluster-require-full-coverage no\n")
	}
	for _, line := range s.opts.Extra {
		b.WriteString(line + "\n")
	}
	return b.String()
}

// clusterPort keeps the bus port within the valid range and off the client port.
func (s *Server) clusterPort() int {
	if s.Port+10000 <= 65535 {
		return s.Port + 10000
	}
	return s.Port - 10000
}

func (s *Server) start() error {
	s.mu.Lock()
	defer s.mu.Unlock()
	cfg := filepath.Join(s.Dir, fmt.Sprintf("redis-%d.conf", s.Port))
	if err := os.WriteFile(cfg, []byte(s.config()), 0o600); err != nil {
		return err
	}
	args := []string{cfg}
	if s.sentinel {
		args = append(args, "--sentinel")
	}
	cmd := exec.Command(Binary(), args...)
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true, Pdeathsig: syscall.SIGKILL}
	var out strings.Builder
	cmd.Stdout = &out
	cmd.Stderr = &out
	if err := cmd.Start(); err != nil {
		return err
	}
	s.cmd = cmd
	exited := make(chan error, 1)
	go func() { exited <- cmd.Wait() }()
	deadline := time.Now().Add(10 * time.Second)
	for time.Now().Before(deadline) {
		select {
		case err := <-exited:
			s.cmd = nil
			return fmt.Errorf("redis-server exited: %v: %s", err, out.String())
		default:
		}
		if s.pingLocked() == nil {
			go func() { <-exited }() // reap later; Stop waits via process signal
			s.cmd = cmd
			return nil
		}
		time.Sleep(5 * time.Millisecond)
	}
	_ = cmd.Process.Kill()
	return fmt.Errorf("redis-server on %s not ready in time: %s", s.Addr, out.String())
}

func (s *Server) pingLocked() error {
	c := redis.NewClient(&redis.Options{Addr: s.Addr, Password: s.opts.Password, DialTimeout: 200 * time.Millisecond, MaxRetries: -1})
	defer c.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 300*time.Millisecond)
	defer cancel()
	return c.Ping(ctx).Err()
}

// Client returns a go-redis client for this server, closed at test end.
func (s *Server) Client() *redis.Client {
	c := redis.NewClient(&redis.Options{Addr: s.Addr, Password: s.opts.Password})
	s.t.Cleanup(func() { _ = c.Close() })
	return c
}

// URL is the redis:// URL of this server.
func (s *Server) URL() string {
	if s.opts.Password != "" {
		return fmt.Sprintf("redis://:%s@%s/0", s.opts.Password, s.Addr)
	}
	return fmt.Sprintf("redis://%s/0", s.Addr)
}

// Kill sends SIGKILL (no AOF flush beyond what fsync policy guaranteed).
func (s *Server) Kill() { s.signalAndWait(syscall.SIGKILL) }

// Stop shuts the server down with SIGTERM and waits for it to exit.
func (s *Server) Stop() { s.signalAndWait(syscall.SIGTERM) }

func (s *Server) signalAndWait(sig syscall.Signal) {
	s.mu.Lock()
	cmd := s.cmd
	s.cmd = nil
	s.mu.Unlock()
	if cmd == nil || cmd.Process == nil {
		return
	}
	_ = syscall.Kill(-cmd.Process.Pid, syscall.SIGCONT)
	_ = cmd.Process.Signal(sig)
	deadline := time.Now().Add(10 * time.Second)
	for time.Now().Before(deadline) {
		if err := cmd.Process.Signal(syscall.Signal(0)); err != nil {
			return
		}
		time.Sleep(5 * time.Millisecond)
	}
	_ = cmd.Process.Kill()
}

// Pause freezes the process (SIGSTOP): connections stay open, nothing answers.
func (s *Server) Pause() { s.signal(syscall.SIGSTOP) }

// Resume undoes Pause.
func (s *Server) Resume() { s.signal(syscall.SIGCONT) }

func (s *Server) signal(sig syscall.Signal) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.cmd != nil && s.cmd.Process != nil {
		_ = s.cmd.Process.Signal(sig)
	}
}

// Restart starts the server again on the same port and directory (so AOF
// data, if enabled, is reloaded). It stops the running process first.
func (s *Server) Restart() {
	s.t.Helper()
	s.Stop()
	var err error
	for attempt := 0; attempt < 50; attempt++ {
		if err = s.start(); err == nil {
			return
		}
		time.Sleep(20 * time.Millisecond) // the old socket may linger briefly
	}
	s.t.Fatalf("restarting redis-server on %s: %v", s.Addr, err)
}

// Running reports whether the process is up.
func (s *Server) Running() bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.cmd != nil
}

// Info returns the named INFO section parsed into key/value pairs.
func (s *Server) Info(section string) map[string]string {
	s.t.Helper()
	c := redis.NewClient(&redis.Options{Addr: s.Addr, Password: s.opts.Password})
	defer c.Close()
	text, err := c.Info(context.Background(), section).Result()
	if err != nil {
		s.t.Fatalf("INFO %s: %v", section, err)
	}
	return ParseInfo(text)
}

// ParseInfo turns INFO output into a map.
func ParseInfo(text string) map[string]string {
	m := map[string]string{}
	sc := bufio.NewScanner(strings.NewReader(text))
	for sc.Scan() {
		line := strings.TrimSpace(sc.Text())
		if line == "" || strings.HasPrefix(line, "#") {
			continue
		}
		if k, v, ok := strings.Cut(line, ":"); ok {
			m[k] = v
		}
	}
	return m
}

// CommandCalls returns calls per command from INFO commandstats
// (keys like "evalsha", "get"), for counting round trips.
func (s *Server) CommandCalls() map[string]int64 {
	out := map[string]int64{}
	for k, v := range s.Info("commandstats") {
		name, ok := strings.CutPrefix(k, "cmdstat_")
		if !ok {
			continue
		}
		for _, field := range strings.Split(v, ",") {
			if n, ok := strings.CutPrefix(field, "calls="); ok {
				c, _ := strconv.ParseInt(n, 10, 64)
				out[name] = c
			}
		}
	}
	return out
}

// TotalCalls sums CommandCalls, excluding the given commands (e.g. "info", "config|resetstat").
func (s *Server) TotalCalls(exclude ...string) int64 {
	skip := map[string]bool{"info": true}
	for _, e := range exclude {
		skip[e] = true
	}
	var n int64
	for k, v := range s.CommandCalls() {
		if !skip[k] {
			n += v
		}
	}
	return n
}

// ResetStats runs CONFIG RESETSTAT.
func (s *Server) ResetStats() {
	c := redis.NewClient(&redis.Options{Addr: s.Addr, Password: s.opts.Password})
	defer c.Close()
	if err := c.ConfigResetStat(context.Background()).Err(); err != nil {
		s.t.Fatalf("CONFIG RESETSTAT: %v", err)
	}
}

// FreePort returns a TCP port on 127.0.0.1 that was free a moment ago and
// whose +10000 neighbour (the cluster bus) is free too when it fits.
func FreePort(t TB) int {
	t.Helper()
	for i := 0; i < 100; i++ {
		l, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			t.Fatalf("finding a free port: %v", err)
		}
		port := l.Addr().(*net.TCPAddr).Port
		l.Close()
		bus := port + 10000
		if bus > 65535 {
			continue
		}
		if lb, err := net.Listen("tcp", net.JoinHostPort("127.0.0.1", strconv.Itoa(bus))); err == nil {
			lb.Close()
			return port
		}
	}
	t.Fatalf("no free port pair found")
	return 0
}
