package harness

import (
	"bytes"
	"context"
	"crypto/tls"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"sort"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	pb "github.com/Kong/go-pdk/server/kong_plugin_protocol"

	"github.com/kong-service-registry/service-registry/tests/kongschema"
)

// Options configures a harness Kong.
type Options struct {
	// Binary is the plugin server executable; its base name is the plugin name.
	Binary string
	// Prefix is Kong's prefix directory (default: a test temp dir).
	Prefix string
	// FailOpen selects Kong 3.4's behaviour when the plugin server cannot be
	// reached (log, skip the phase, proxy). The default is Kong 3.9's: 500.
	FailOpen bool
	// RespawnDelay between two spawns of the plugin server (Kong: 1 s).
	RespawnDelay time.Duration
	// SocketTimeout bounds every socket operation (default 10 s).
	SocketTimeout time.Duration
	// PoolSize is the keepalive pool of plugin connections per worker (default 16).
	PoolSize int
	// Workers is the number of nginx workers (default 1). Each has its own
	// connection pool, sequence counter and instance cache, as in Kong, so
	// the plugin sees one instance per worker for the same config; requests
	// are spread over them in turn.
	Workers int
	// Log also receives Kong's log lines (the plugin output with its
	// "[name:pid] " prefix, harness events); they are always kept in memory.
	Log io.Writer
	// Version is what Server / Via headers show (default 3.9.3).
	Version string
}

// Kong is one harness Kong node with one worker.
type Kong struct {
	t       testing.TB
	opts    Options
	plugin  *kongschema.Plugin
	dump    []byte
	proc    *Process
	workers []*worker
	nextW   atomic.Uint64
	methods map[string]protoMethod
	nodeID  string
	phases  map[string]bool
	logger  *slog.Logger

	mu        sync.RWMutex
	services  map[string]*Service
	routes    []*Route
	upstreams map[string]*Upstream
	plugins   map[string]*pluginEntity
	seq       int64
	rr        map[string]int
	// transformers: service id → the bundled response-transformer's
	// add.headers ("name:value") on that service (transformer.go).
	transformers map[string][]string

	ln        net.Listener
	srv       *http.Server
	url       string
	transport *http.Transport
	logWG     sync.WaitGroup

	pendingLogs   atomic.Int64
	totalRequests atomic.Int64
	totalEvents   atomic.Int64
	totalCalls    atomic.Int64
	starts        atomic.Int64
	closes        atomic.Int64

	statsMu       sync.Mutex
	startConfigs  [][]byte
	requests      []*RequestStats
	keepStats     bool
	unimplemented map[string]int

	logMu  sync.Mutex
	logBuf bytes.Buffer
}

type instance struct {
	id  int32
	seq int64
}

// worker is one nginx worker's share of the plugin machinery: pb_rpc.lua's
// Rpc object (pool, msg_id) and plugin.lua's running_instances.
type worker struct {
	id        int
	rpc       *rpcClient
	instMu    sync.Mutex
	instances map[string]*instance
}

func (k *Kong) pickWorker() *worker {
	return k.workers[int(k.nextW.Add(1)-1)%len(k.workers)]
}

// logWriter feeds process output and harness events into Kong's log.
type logWriter struct{ k *Kong }

func (w logWriter) Write(p []byte) (int, error) {
	w.k.logMu.Lock()
	defer w.k.logMu.Unlock()
	w.k.logBuf.Write(p)
	if w.k.opts.Log != nil {
		_, _ = w.k.opts.Log.Write(p)
	}
	return len(p), nil
}

func (k *Kong) logLine(s string) { _, _ = logWriter{k}.Write([]byte(s + "\n")) }

// Start runs the plugin's query command, starts and supervises the plugin
// server, and serves the proxy on a loopback port. Everything stops at the
// end of the test; a PDK method the harness does not implement fails it.
func Start(t testing.TB, opts Options) *Kong {
	t.Helper()
	k, err := start(t, opts)
	if err != nil {
		t.Fatalf("harness: %v", err)
	}
	return k
}

func start(t testing.TB, opts Options) (*Kong, error) {
	if err := opts.fill(t); err != nil {
		return nil, err
	}
	k := &Kong{
		t: t, opts: opts, methods: protoMethods(), nodeID: newUUID(),
		services: map[string]*Service{}, upstreams: map[string]*Upstream{},
		plugins: map[string]*pluginEntity{},
		rr:      map[string]int{}, unimplemented: map[string]int{}, keepStats: true,
	}
	k.logger = slog.New(slog.NewTextHandler(logWriter{k}, nil))
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	if err := k.queryPlugin(ctx); err != nil {
		return nil, err
	}
	if err := k.startPluginServer(ctx); err != nil {
		return nil, err
	}
	if err := k.listen(); err != nil {
		return nil, err
	}
	t.Cleanup(func() {
		// Runs first: Kong's log (plugin output included) explains failures.
		if t.Failed() {
			t.Logf("harness Kong log:\n%s", k.Logs())
		}
	})
	return k, nil
}

// fill checks the options and fills in the defaults.
func (opts *Options) fill(t testing.TB) error {
	if opts.Binary == "" {
		return errors.New("options: Binary is required")
	}
	if opts.Prefix == "" {
		// Unix socket paths are limited to ~108 bytes: keep the prefix short.
		dir, err := mkShortTemp()
		if err != nil {
			return err
		}
		t.Cleanup(func() { removeAll(dir) })
		opts.Prefix = dir
	}
	if opts.SocketTimeout <= 0 {
		opts.SocketTimeout = 10 * time.Second
	}
	if opts.PoolSize <= 0 {
		opts.PoolSize = 16
	}
	if opts.Workers <= 0 {
		opts.Workers = 1
	}
	if opts.Version == "" {
		opts.Version = "3.9.3"
	}
	return nil
}

// queryPlugin asks the plugin binary for its info (-dump) and refuses
// phases the harness does not run.
func (k *Kong) queryPlugin(ctx context.Context) error {
	p, dump, err := Query(ctx, k.opts.Binary)
	if err != nil {
		return err
	}
	k.plugin, k.dump = p, dump
	k.phases = map[string]bool{}
	for _, ph := range p.Phases {
		if ph != "access" && ph != "log" {
			return fmt.Errorf("plugin declares phase %q: the harness runs access and log only", ph)
		}
		k.phases[ph] = true
	}
	return nil
}

// startPluginServer starts the plugin server process, waits until it
// listens and gives each worker its connection pool.
func (k *Kong) startPluginServer(ctx context.Context) error {
	opts := k.opts
	proc, err := StartProcess(ProcessOptions{
		Binary: opts.Binary, Name: k.plugin.Name, Prefix: opts.Prefix,
		RespawnDelay: opts.RespawnDelay, Log: logWriter{k}, Logger: k.logger,
	})
	if err != nil {
		return fmt.Errorf("starting plugin server: %w", err)
	}
	k.proc = proc
	k.t.Cleanup(proc.Stop)
	if err := proc.WaitReady(ctx); err != nil {
		return err
	}
	for i := 0; i < opts.Workers; i++ {
		k.workers = append(k.workers, &worker{
			id: i, rpc: newRPC(proc.SocketPath(), opts.SocketTimeout, opts.PoolSize),
			instances: map[string]*instance{},
		})
	}
	return nil
}

// listen serves the proxy on a free loopback port.
func (k *Kong) listen() error {
	k.transport = &http.Transport{
		// Kong does not verify upstream certificates unless the service
		// says tls_verify (default off).
		TLSClientConfig:     &tls.Config{InsecureSkipVerify: true}, //nolint:gosec // Kong's default
		MaxIdleConnsPerHost: 64,
		IdleConnTimeout:     30 * time.Second,
		DisableCompression:  true,
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return fmt.Errorf("listening: %w", err)
	}
	k.ln = ln
	k.url = "http://" + ln.Addr().String()
	k.srv = &http.Server{Handler: k, ReadHeaderTimeout: 10 * time.Second}
	go func() { _ = k.srv.Serve(ln) }()
	k.t.Cleanup(k.close)
	return nil
}

func (k *Kong) close() {
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	_ = k.srv.Shutdown(ctx)
	k.logWG.Wait()
	k.transport.CloseIdleConnections()
	for _, w := range k.workers {
		w.rpc.drain()
	}
	k.statsMu.Lock()
	defer k.statsMu.Unlock()
	for m, n := range k.unimplemented {
		k.t.Errorf("harness: the plugin called %s %d time(s): not implemented by the harness (Kong would run it; implement it in tests/harness/pdk.go)", m, n)
	}
}

// URL is the proxy's base URL, e.g. http://127.0.0.1:41234.
func (k *Kong) URL() string { return k.url }

// Plugin is the parsed -dump.
func (k *Kong) Plugin() *kongschema.Plugin { return k.plugin }

// Dump is the raw -dump output.
func (k *Kong) Dump() []byte { return k.dump }

// Process is the supervised plugin server.
func (k *Kong) Process() *Process { return k.proc }

// ConnectionsOpened counts the plugin socket connections the harness dialled.
func (k *Kong) ConnectionsOpened() int64 {
	var n int64
	for _, w := range k.workers {
		n += w.rpc.opened.Load()
	}
	return n
}

// InstancesStarted and InstancesClosed count cmd_start_instance and
// cmd_close_instance calls.
func (k *Kong) InstancesStarted() int64 { return k.starts.Load() }
func (k *Kong) InstancesClosed() int64  { return k.closes.Load() }

// Logs is everything logged so far.
func (k *Kong) Logs() string {
	k.logMu.Lock()
	defer k.logMu.Unlock()
	return k.logBuf.String()
}

// KeepRequestStats turns per-request records on (default) or off (benchmarks).
func (k *Kong) KeepRequestStats(on bool) {
	k.statsMu.Lock()
	k.keepStats = on
	k.statsMu.Unlock()
}

// StartConfigs returns the config JSON of every cmd_start_instance so far.
func (k *Kong) StartConfigs() [][]byte {
	k.statsMu.Lock()
	defer k.statsMu.Unlock()
	return append([][]byte(nil), k.startConfigs...)
}

// TakeUnimplemented returns and forgets the unimplemented PDK methods called so
// far, for tests that provoke them on purpose.
func (k *Kong) TakeUnimplemented() map[string]int {
	k.statsMu.Lock()
	defer k.statsMu.Unlock()
	u := k.unimplemented
	k.unimplemented = map[string]int{}
	return u
}

func (k *Kong) recordUnimplemented(method string) {
	k.statsMu.Lock()
	k.unimplemented[method]++
	k.statsMu.Unlock()
	k.logLine("[harness] unimplemented PDK method " + method)
}

// resetInstances is reset_instance: this worker's instances go, and the
// "reset_instances" worker event makes every other worker drop theirs.
func (k *Kong) resetInstances() {
	for _, w := range k.workers {
		w.instMu.Lock()
		w.instances = map[string]*instance{}
		w.instMu.Unlock()
	}
}

// instanceID is get_instance_id: reuse the instance started for this plugin
// entity and __seq__, else start one and close the previous one.
func (k *Kong) instanceID(w *worker, pe *pluginEntity) (int32, error) {
	w.instMu.Lock()
	defer w.instMu.Unlock()
	info := w.instances[pe.id]
	if info != nil && info.seq == pe.seq {
		return info.id, nil
	}
	cfg, err := json.Marshal(k.configFor(pe))
	if err != nil {
		return 0, fmt.Errorf("encoding config: %w", err)
	}
	k.statsMu.Lock()
	k.startConfigs = append(k.startConfigs, cfg)
	k.statsMu.Unlock()
	ret, err := w.rpc.call(&pb.RpcCall{Call: &pb.RpcCall_CmdStartInstance{
		CmdStartInstance: &pb.CmdStartInstance{Name: k.plugin.Name, Config: cfg},
	}}, nil)
	k.starts.Add(1)
	if err != nil {
		delete(w.instances, pe.id)
		k.logLine("[kong] err starting instance: " + err.Error())
		return 0, &startError{err}
	}
	st := ret.GetInstanceStatus()
	if st == nil {
		delete(w.instances, pe.id)
		return 0, &startError{errors.New("start instance: reply without instance_status")}
	}
	w.instances[pe.id] = &instance{id: st.InstanceId, seq: pe.seq}
	if info != nil {
		// "there was a previous instance with same key, close it"; the
		// reply does not matter.
		_, _ = w.rpc.call(&pb.RpcCall{Call: &pb.RpcCall_CmdCloseInstance{
			CmdCloseInstance: &pb.CmdCloseInstance{InstanceId: info.id},
		}}, nil)
		k.closes.Add(1)
	}
	return st.InstanceId, nil
}

// startError is a failed cmd_start_instance: get_instance_id raises it as a Lua
// error, so the request fails with 500 and is not retried.
type startError struct{ err error }

func (e *startError) Error() string { return "starting instance: " + e.err.Error() }
func (e *startError) Unwrap() error { return e.err }

// handleEvent is Rpc:handle_event: start or reuse the instance, send
// cmd_handle_event and serve the plugin's PDK calls; on "closed" or "no plugin
// instance" reset the instances and try again, like Kong (which recurses
// without a bound; the harness stops after a generous number of attempts).
func (k *Kong) handleEvent(rc *reqCtx, pe *pluginEntity, phase string) error {
	rc.phase = phase
	limit := k.opts.PoolSize + 8
	for attempt := 0; ; attempt++ {
		id, err := k.instanceID(rc.w, pe)
		if err != nil {
			return err
		}
		rc.stats.addEvent(phase)
		k.totalEvents.Add(1)
		_, err = rc.w.rpc.call(&pb.RpcCall{Call: &pb.RpcCall_CmdHandleEvent{
			CmdHandleEvent: &pb.CmdHandleEvent{InstanceId: id, EventName: phase},
		}}, rc.dispatch)
		if err == nil {
			return nil
		}
		if errors.Is(err, errExit) {
			return err
		}
		var le *luaError
		if errors.As(err, &le) || errors.Is(err, errUnimplemented) {
			return err
		}
		if isRetryable(err) && attempt < limit {
			k.resetInstances()
			k.logLine("[kong] warn " + err.Error())
			continue
		}
		return err
	}
}

// RequestStats records what one proxied request cost.
type RequestStats struct {
	Method, Path string
	Status       int
	// Route is the name of the route the router matched ("" for none):
	// what Kong's debug header Kong-Route-Name shows.
	Route string
	// Events counts cmd_handle_event calls by phase ("access", "log").
	Events map[string]int
	// Calls counts PDK calls by method name; CallsByPhase by phase.
	Calls        map[string]int
	CallsByPhase map[string]int
	// Errors lists Lua errors raised in PDK functions ("method: message").
	Errors []string

	mu   sync.Mutex
	done chan struct{}
}

func newStats(r *http.Request) *RequestStats {
	return &RequestStats{
		Method: r.Method, Path: r.URL.Path, Events: map[string]int{}, Calls: map[string]int{},
		CallsByPhase: map[string]int{}, done: make(chan struct{}),
	}
}

func (s *RequestStats) addEvent(phase string) {
	s.mu.Lock()
	s.Events[phase]++
	s.mu.Unlock()
}

func (s *RequestStats) addCall(phase, method string) {
	s.mu.Lock()
	s.Calls[method]++
	s.CallsByPhase[phase]++
	s.mu.Unlock()
}

func (s *RequestStats) addError(e string) {
	s.mu.Lock()
	s.Errors = append(s.Errors, e)
	s.mu.Unlock()
}

// TotalCalls is the number of PDK calls in all phases.
func (s *RequestStats) TotalCalls() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return sum(s.CallsByPhase)
}

// TotalEvents is the number of events in all phases.
func (s *RequestStats) TotalEvents() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return sum(s.Events)
}

func sum(counts map[string]int) int {
	n := 0
	for _, c := range counts {
		n += c
	}
	return n
}

// Done is closed once the request's log phase has finished.
func (s *RequestStats) Done() <-chan struct{} { return s.done }

// String summarises the record for test failures.
func (s *RequestStats) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	names := make([]string, 0, len(s.Calls))
	for m, n := range s.Calls {
		names = append(names, fmt.Sprintf("%s×%d", m, n))
	}
	sort.Strings(names)
	return fmt.Sprintf("%s %s → %d events=%v calls=[%s] errors=%v", s.Method, s.Path, s.Status, s.Events, strings.Join(names, " "), s.Errors)
}

// Requests returns the records of requests whose log phase has finished.
func (k *Kong) Requests() []*RequestStats {
	k.statsMu.Lock()
	defer k.statsMu.Unlock()
	var out []*RequestStats
	for _, r := range k.requests {
		select {
		case <-r.done:
			out = append(out, r)
		default:
		}
	}
	return out
}

// ResetRequests forgets the records so far.
func (k *Kong) ResetRequests() {
	k.statsMu.Lock()
	k.requests = nil
	k.statsMu.Unlock()
}

// WaitRequests polls until n requests have finished their log phase.
func (k *Kong) WaitRequests(ctx context.Context, n int) ([]*RequestStats, error) {
	for {
		rs := k.Requests()
		if len(rs) >= n {
			return rs, nil
		}
		select {
		case <-ctx.Done():
			return rs, fmt.Errorf("%d of %d requests finished: %w", len(rs), n, ctx.Err())
		case <-time.After(2 * time.Millisecond):
		}
	}
}

// WaitIdle polls until no log phase is running (they run after responses).
func (k *Kong) WaitIdle(ctx context.Context) error {
	for k.pendingLogs.Load() > 0 {
		select {
		case <-ctx.Done():
			return fmt.Errorf("log phases still running: %w", ctx.Err())
		case <-time.After(time.Millisecond):
		}
	}
	return nil
}

// Totals are counters over the harness's life: requests, events, PDK calls.
type Totals struct{ Requests, Events, Calls int64 }

// Totals returns the running counters.
func (k *Kong) Totals() Totals {
	return Totals{Requests: k.totalRequests.Load(), Events: k.totalEvents.Load(), Calls: k.totalCalls.Load()}
}
