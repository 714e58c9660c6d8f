package harness

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/kong-service-registry/service-registry/internal/testbin"
)

// srtestBin is the tiny go-pdk plugin under testdata/srtest, built once.
var srtestBin string

func TestMain(m *testing.M) {
	testbin.Main(m, func(dir string) (err error) {
		srtestBin, err = testbin.Build(dir, "./tests/harness/testdata/srtest", "srtest")
		return err
	})
}

func ctxT(t *testing.T, d time.Duration) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), d)
	t.Cleanup(cancel)
	return ctx
}

// setup starts a harness with one service/route "/t" on backend and the
// srtest plugin on the service with cfg.
func setup(t *testing.T, opts Options, backend string, cfg map[string]any) (*Kong, string) {
	t.Helper()
	opts.Binary = srtestBin
	k := Start(t, opts)
	host, port, _ := net.SplitHostPort(strings.TrimPrefix(backend, "http://"))
	var p int
	fmt.Sscan(port, &p)
	k.AddService(Service{Name: "svc", Host: host, Port: p, Retries: Int(2)})
	if _, err := k.AddRoute(Route{Name: "rt", Service: "svc", Paths: []string{"/t"}}); err != nil {
		t.Fatal(err)
	}
	id, err := k.AddPlugin(PluginConfig{Service: "svc", Config: cfg})
	if err != nil {
		t.Fatal(err)
	}
	return k, id
}

type seen struct {
	mu   sync.Mutex
	reqs []*http.Request
}

func backend(t *testing.T) (*httptest.Server, *seen) {
	s := &seen{}
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		s.mu.Lock()
		s.reqs = append(s.reqs, r.Clone(context.Background()))
		s.mu.Unlock()
		w.Header().Set("X-Backend", "1")
		fmt.Fprintf(w, "hello %s", r.URL.Path)
	}))
	t.Cleanup(srv.Close)
	return srv, s
}

func get(t *testing.T, url string, hdr ...string) (*http.Response, string) {
	t.Helper()
	req, _ := http.NewRequest("GET", url, nil)
	for i := 0; i+1 < len(hdr); i += 2 {
		if strings.EqualFold(hdr[i], "host") {
			req.Host = hdr[i+1]
			continue
		}
		req.Header.Add(hdr[i], hdr[i+1])
	}
	c := &http.Client{Timeout: 20 * time.Second}
	resp, err := c.Do(req)
	if err != nil {
		t.Fatalf("GET %s: %v", url, err)
	}
	b, _ := io.ReadAll(resp.Body)
	_ = resp.Body.Close()
	return resp, string(b)
}

func lastRequest(t *testing.T, k *Kong, n int) *RequestStats {
	t.Helper()
	rs, err := k.WaitRequests(ctxT(t, 10*time.Second), n)
	if err != nil {
		t.Fatal(err)
	}
	return rs[n-1]
}

// Acceptance 1: the real binary runs as a separate process and the harness
// talks to it over its unix socket: the peer of a socket connection is the
// supervised PID, and the socket lives at <prefix>/<name>.socket.
func TestRealProcessOverSocket(t *testing.T) {
	be, _ := backend(t)
	k, _ := setup(t, Options{}, be.URL, map[string]any{"mode": "noop"})
	pid := k.Process().PID()
	if pid <= 0 || pid == os.Getpid() {
		t.Fatalf("pid = %d", pid)
	}
	exe, err := os.Readlink(fmt.Sprintf("/proc/%d/exe", pid))
	if err != nil || exe != srtestBin {
		t.Fatalf("/proc/%d/exe = %q (%v), want %s", pid, exe, err, srtestBin)
	}
	sock := k.Process().SocketPath()
	if sock != filepath.Join(k.opts.Prefix, "srtest.socket") {
		t.Fatalf("socket = %s", sock)
	}
	if fi, err := os.Stat(sock); err != nil || fi.Mode()&os.ModeSocket == 0 {
		t.Fatalf("socket %s: %v %v", sock, fi, err)
	}
	c, err := net.Dial("unix", sock)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	raw, _ := c.(*net.UnixConn).SyscallConn()
	var cred *syscall.Ucred
	_ = raw.Control(func(fd uintptr) {
		cred, err = syscall.GetsockoptUcred(int(fd), syscall.SOL_SOCKET, syscall.SO_PEERCRED)
	})
	if err != nil || int(cred.Pid) != pid {
		t.Fatalf("socket peer pid = %v (%v), want %d", cred, err, pid)
	}
	resp, body := get(t, k.URL()+"/t/x")
	if resp.StatusCode != 200 || body != "hello /x" {
		t.Fatalf("proxied = %d %q", resp.StatusCode, body)
	}
	st := lastRequest(t, k, 1)
	if st.Events["access"] != 1 || st.Events["log"] != 1 || st.TotalCalls() != 0 {
		t.Fatalf("stats = %v", st)
	}
	// process.lua copies the plugin's output with the "[name:pid] " prefix.
	if want := fmt.Sprintf("[srtest:%d] ", pid); !strings.Contains(k.Logs(), want+"") || !strings.Contains(k.Logs(), "Listening on socket: "+sock) {
		t.Fatalf("log lacks %q / socket line:\n%s", want, k.Logs())
	}
}

// Config JSON as Kong sends it: absent fields absent, Kong's keys added.
func TestStartInstanceConfig(t *testing.T) {
	be, _ := backend(t)
	k, id := setup(t, Options{}, be.URL, map[string]any{"mode": "noop"})
	get(t, k.URL()+"/t")
	cfgs := k.StartConfigs()
	if len(cfgs) != 1 {
		t.Fatalf("%d start configs", len(cfgs))
	}
	var cfg map[string]any
	if err := json.Unmarshal(cfgs[0], &cfg); err != nil {
		t.Fatal(err)
	}
	for _, absent := range []string{"host", "port", "log_mode", "route_id", "consumer_id"} {
		if _, ok := cfg[absent]; ok {
			t.Errorf("%s present in %s", absent, cfgs[0])
		}
	}
	svc := k.services["svc"]
	if cfg["mode"] != "noop" || cfg["__plugin_id"] != id || cfg["service_id"] != svc.ID || cfg["__seq__"] == nil ||
		cfg["__key__"] != "plugins:srtest::"+svc.ID+":::"+defaultWorkspace {
		t.Fatalf("config = %s", cfgs[0])
	}
	// Kong's schema refuses a bad config before it reaches the plugin.
	_, err := k.AddPlugin(PluginConfig{Config: map[string]any{"mode": 5, "bogus": true}})
	se, ok := err.(*SchemaError)
	if !ok {
		t.Fatalf("err = %v", err)
	}
	want := map[string]any{"mode": "expected a string", "bogus": "unknown field"}
	if fmt.Sprint(se.Fields) != fmt.Sprint(want) {
		t.Fatalf("fields = %v", se.Fields)
	}
}

// A config change starts a new instance, then closes the old one.
func TestInstanceRestartOnConfigChange(t *testing.T) {
	be, _ := backend(t)
	k, id := setup(t, Options{}, be.URL, map[string]any{"mode": "noop"})
	get(t, k.URL()+"/t")
	get(t, k.URL()+"/t")
	// Log phases run after the response: one still running when the config
	// changes would (as in Kong) start an instance for the old config again.
	// Wait for both, so the counts below are about the update alone.
	lastRequest(t, k, 2)
	if k.InstancesStarted() != 1 {
		t.Fatalf("started %d instances for one config", k.InstancesStarted())
	}
	if err := k.UpdatePlugin(id, map[string]any{"mode": "getters"}); err != nil {
		t.Fatal(err)
	}
	resp, _ := get(t, k.URL()+"/t")
	lastRequest(t, k, 3)
	started, closed := k.InstancesStarted(), k.InstancesClosed()
	cfgs := k.StartConfigs()
	if resp.Header.Get("X-Path") != "/t" || started != 2 || closed != 1 || !strings.Contains(string(cfgs[len(cfgs)-1]), `"getters"`) {
		t.Fatalf("after update: X-Path=%q started=%d closed=%d configs %s", resp.Header.Get("X-Path"), started, closed, cfgs)
	}
}

func TestPDKGetters(t *testing.T) {
	be, _ := backend(t)
	k, _ := setup(t, Options{}, be.URL, map[string]any{"mode": "getters"})
	_, port, _ := net.SplitHostPort(strings.TrimPrefix(k.URL(), "http://"))
	resp, _ := get(t, k.URL()+"/t/a/../b?q=1", "Host", "API.Example.com:"+port, "X-In", "one", "X-In", "two")
	want := map[string]string{
		"X-Host": "api.example.com", "X-Path": "/t/b", "X-Method": "GET", "X-Scheme": "http",
		"X-Port": port, "X-In": "one", "X-In-All": "one,two", "X-Ip": "127.0.0.1", "X-Fip": "127.0.0.1",
		"X-Route": "rt", "X-Service": "svc", "X-Backend": "1",
	}
	for h, v := range want {
		if got := resp.Header.Get(h); got != v {
			t.Errorf("%s = %q, want %q", h, got, v)
		}
	}
	if got := resp.Header.Values("X-Multi"); fmt.Sprint(got) != "[a b]" {
		t.Errorf("X-Multi = %v", got)
	}
	if !strings.Contains(resp.Header.Get("Via"), "kong/3.9.3") {
		t.Errorf("Via = %q", resp.Header.Get("Via"))
	}
	st := lastRequest(t, k, 1)
	if st.CallsByPhase["access"] != 15 || st.Calls["kong.response.add_header"] != 2 {
		t.Fatalf("stats = %v", st)
	}
	if !strings.Contains(k.Logs(), "[kong] info [srtest] getters done for /t/b") {
		t.Fatalf("kong.log.info missing:\n%s", k.Logs())
	}
}

// set_target: proxied to the target, Host is the target host without port,
// access headers on the response, upstream header set, log data saved.
func TestSetTargetAndLog(t *testing.T) {
	be, seenReqs := backend(t)
	host, port, _ := net.SplitHostPort(strings.TrimPrefix(be.URL, "http://"))
	var p int
	fmt.Sscan(port, &p)
	// The service points elsewhere (a closed port): only set_target can reach be.
	k, _ := setup(t, Options{}, "http://127.0.0.1:9", map[string]any{"mode": "target", "host": host, "port": p, "log_mode": "serialize"})
	resp, body := get(t, k.URL()+"/t/x")
	if resp.StatusCode != 200 || body != "hello /x" || resp.Header.Get("X-Test-Access") != "1" {
		t.Fatalf("resp = %d %q %v", resp.StatusCode, body, resp.Header)
	}
	seenReqs.mu.Lock()
	up := seenReqs.reqs[0]
	seenReqs.mu.Unlock()
	if up.Host != host || up.Header.Get("X-Test-Upstream") != "1" || up.Header.Get("X-Forwarded-For") != "127.0.0.1" {
		t.Fatalf("upstream Host=%q headers=%v", up.Host, up.Header)
	}
	st := lastRequest(t, k, 1)
	if st.CallsByPhase["log"] != 3 || st.Events["log"] != 1 {
		t.Fatalf("stats = %v", st)
	}
	pollLog(t, k, "LOG status=200 picked="+host+":"+port)
	logs := k.Logs()
	i := strings.Index(logs, "serialize=")
	var ser struct {
		Tries       []map[string]any `json:"tries"`
		UpstreamURI string           `json:"upstream_uri"`
		Response    struct{ Status int }
	}
	line := logs[i+len("serialize="):]
	line = line[:strings.IndexByte(line, '\n')]
	if err := json.Unmarshal([]byte(line), &ser); err != nil {
		t.Fatalf("serialize: %v: %s", err, line)
	}
	if len(ser.Tries) != 1 || ser.Tries[0]["ip"] != host || ser.UpstreamURI != "/x" || ser.Response.Status != 200 {
		t.Fatalf("serialize = %s", line)
	}
}

func pollLog(t *testing.T, k *Kong, want string) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for !strings.Contains(k.Logs(), want) {
		if time.Now().After(deadline) {
			t.Fatalf("log never showed %q:\n%s", want, k.Logs())
		}
		time.Sleep(5 * time.Millisecond)
	}
}

// Retries go to the same overridden target: retries 2 → 3 tries → 502.
func TestRetriesSameTarget(t *testing.T) {
	ln, _ := net.Listen("tcp", "127.0.0.1:0")
	port := ln.Addr().(*net.TCPAddr).Port
	ln.Close() // now refusing
	be, _ := backend(t)
	k, _ := setup(t, Options{}, be.URL, map[string]any{"mode": "target", "host": "127.0.0.1", "port": port, "log_mode": "serialize"})
	// Kong's error page for a failed upstream: format by Accept (default
	// text/plain), headers of a proxied response (KONG-NOTES.md).
	resp, body := get(t, k.URL()+"/t", "Accept", "application/json")
	var msg struct{ Message string }
	_ = json.Unmarshal([]byte(body), &msg)
	if resp.StatusCode != 502 || msg.Message != "An invalid response was received from the upstream server" {
		t.Fatalf("resp = %d %s", resp.StatusCode, body)
	}
	if resp.Header.Get("X-Test-Access") != "1" || resp.Header.Get("Server") != "kong/3.9.3" || resp.Header.Get("Via") != "1.1 kong/3.9.3" ||
		resp.Header.Get("X-Kong-Upstream-Latency") == "" || resp.Header.Get("X-Kong-Response-Latency") != "" {
		t.Fatalf("headers = %v", resp.Header)
	}
	pollLog(t, k, "LOG status=502")
	logs := k.Logs()
	line := logs[strings.Index(logs, "serialize=")+len("serialize="):]
	line = line[:strings.IndexByte(line, '\n')]
	var ser struct{ Tries []tryInfo }
	_ = json.Unmarshal([]byte(line), &ser)
	if len(ser.Tries) != 3 {
		t.Fatalf("tries = %+v", ser.Tries)
	}
	for i, tr := range ser.Tries {
		if tr.Port != port || (i < 2 && (tr.State != "failed" || tr.Code != 502)) || (i == 2 && tr.State != "") {
			t.Fatalf("try %d = %+v", i, tr)
		}
	}
}

// exit is never answered: Kong ends the request and drops that connection.
func TestExitNeverAnswered(t *testing.T) {
	be, seenReqs := backend(t)
	k, _ := setup(t, Options{}, be.URL, map[string]any{"mode": "exit", "log_mode": "serialize"})
	resp, body := get(t, k.URL()+"/t")
	if resp.StatusCode != 403 || body != `{"message":"nope"}` {
		t.Fatalf("resp = %d %q", resp.StatusCode, body)
	}
	for h, v := range map[string]string{"X-Before-Exit": "1", "X-Exit": "1", "Content-Type": "application/json", "Server": "kong/3.9.3", "Content-Length": "18"} {
		if resp.Header.Get(h) != v {
			t.Errorf("%s = %q, want %q", h, resp.Header.Get(h), v)
		}
	}
	if resp.Header.Get("X-Kong-Response-Latency") == "" {
		t.Error("no X-Kong-Response-Latency")
	}
	pollLog(t, k, "LOG status=403")
	opened := k.ConnectionsOpened()
	get(t, k.URL()+"/t")
	lastRequest(t, k, 2)
	// The exit connection was closed, not pooled: the second request's access
	// event needed a new connection (its log event may reuse one).
	if k.ConnectionsOpened() <= opened {
		t.Fatalf("no new connection after exit: %d", k.ConnectionsOpened())
	}
	seenReqs.mu.Lock()
	defer seenReqs.mu.Unlock()
	if len(seenReqs.reqs) != 0 {
		t.Fatal("exit request reached the backend")
	}
}

// Only saved data works in the log timer.
func TestLogPhaseRestrictions(t *testing.T) {
	be, _ := backend(t)
	k, _ := setup(t, Options{}, be.URL, map[string]any{"log_mode": "forbidden"})
	resp, _ := get(t, k.URL()+"/t")
	if resp.StatusCode != 200 {
		t.Fatalf("status %d", resp.StatusCode)
	}
	st := lastRequest(t, k, 1)
	if len(st.Errors) != 1 || st.Errors[0] != "kong.request.get_path: "+errDisabled {
		t.Fatalf("stats = %v", st)
	}
	// The plugin sees the connection die instead of an answer.
	pollLog(t, k, "LOG forbidden err=")
}

// Kong 3.9 answers 500 for Lua errors in PDK functions, unknown methods and
// (here) methods the harness does not implement, which also fail the test
// unless taken.
func TestPluginErrors500(t *testing.T) {
	be, _ := backend(t)
	for _, mode := range []string{"bad_target", "unknown_method", "unimplemented"} {
		t.Run(mode, func(t *testing.T) {
			k, _ := setup(t, Options{}, be.URL, map[string]any{"mode": mode})
			resp, body := get(t, k.URL()+"/t")
			var msg struct{ Message string }
			_ = json.Unmarshal([]byte(body), &msg)
			if resp.StatusCode != 500 || msg.Message != "An unexpected error occurred" {
				t.Fatalf("resp = %d %s", resp.StatusCode, body)
			}
			u := k.TakeUnimplemented()
			if (mode == "unimplemented") != (u["kong.request.get_raw_body"] == 1) {
				t.Fatalf("unimplemented = %v", u)
			}
			// The plugin server survives and serves the next request.
			if err := k.UpdatePlugin(k.firstPluginID(), map[string]any{"mode": "noop"}); err != nil {
				t.Fatal(err)
			}
			if resp, _ := get(t, k.URL()+"/t"); resp.StatusCode != 200 {
				t.Fatalf("after: %d", resp.StatusCode)
			}
		})
	}
}

func (k *Kong) firstPluginID() string {
	k.mu.RLock()
	defer k.mu.RUnlock()
	for id := range k.plugins {
		return id
	}
	return ""
}

// The supervisor respawns a killed plugin server; Kong then sees "closed"/"no
// plugin instance", starts the instance again and retries the event.
func TestRespawnAfterKill(t *testing.T) {
	be, _ := backend(t)
	k, _ := setup(t, Options{RespawnDelay: 50 * time.Millisecond}, be.URL, map[string]any{"mode": "getters"})
	if resp, _ := get(t, k.URL()+"/t"); resp.StatusCode != 200 {
		t.Fatal(resp.Status)
	}
	old := k.Process().PID()
	if err := k.Process().Kill(); err != nil {
		t.Fatal(err)
	}
	waitNewProcess(t, k, old)
	resp, _ := get(t, k.URL()+"/t")
	if resp.StatusCode != 200 || resp.Header.Get("X-Path") != "/t" {
		t.Fatalf("after respawn: %d %v", resp.StatusCode, resp.Header)
	}
	if k.Process().Spawns() != 2 || k.InstancesStarted() < 2 {
		t.Fatalf("spawns=%d starts=%d", k.Process().Spawns(), k.InstancesStarted())
	}
}

func waitNewProcess(t *testing.T, k *Kong, old int) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for k.Process().PID() == old || dialCheck(k.Process().SocketPath()) != nil {
		if time.Now().After(deadline) {
			t.Fatal("plugin server not respawned")
		}
		time.Sleep(5 * time.Millisecond)
	}
}

// A panic kills the plugin server: that request gets 500, the server comes back.
func TestPanicKillsServer(t *testing.T) {
	be, _ := backend(t)
	k, id := setup(t, Options{RespawnDelay: 50 * time.Millisecond}, be.URL, map[string]any{"mode": "panic"})
	old := k.Process().PID()
	resp, _ := get(t, k.URL()+"/t")
	if resp.StatusCode != 500 {
		t.Fatalf("status %d", resp.StatusCode)
	}
	waitNewProcess(t, k, old)
	if err := k.UpdatePlugin(id, map[string]any{"mode": "noop"}); err != nil {
		t.Fatal(err)
	}
	if resp, _ := get(t, k.URL()+"/t"); resp.StatusCode != 200 {
		t.Fatalf("after respawn: %d", resp.StatusCode)
	}
}

// Plugin server down: Kong 3.9 fails closed (500), Kong 3.4 fails open.
func TestPluginDownFailClosedOrOpen(t *testing.T) {
	be, _ := backend(t)
	for _, failOpen := range []bool{false, true} {
		t.Run(fmt.Sprintf("failOpen=%v", failOpen), func(t *testing.T) {
			k, _ := setup(t, Options{RespawnDelay: time.Hour, FailOpen: failOpen}, be.URL, map[string]any{"mode": "noop"})
			if err := k.Process().Kill(); err != nil {
				t.Fatal(err)
			}
			deadline := time.Now().Add(5 * time.Second)
			for dialCheck(k.Process().SocketPath()) == nil && time.Now().Before(deadline) {
				time.Sleep(5 * time.Millisecond)
			}
			resp, body := get(t, k.URL()+"/t/down")
			want := 500
			if failOpen {
				want = 200
			}
			if resp.StatusCode != want {
				t.Fatalf("status %d %s, want %d", resp.StatusCode, body, want)
			}
		})
	}
}

func TestRouter(t *testing.T) {
	k := &Kong{services: map[string]*Service{}, upstreams: map[string]*Upstream{}, plugins: map[string]*pluginEntity{}}
	k.AddService(Service{Name: "s"})
	add := func(name string, hosts, paths []string) {
		if _, err := k.AddRoute(Route{Name: name, Service: "s", Hosts: hosts, Paths: paths}); err != nil {
			t.Fatal(err)
		}
	}
	add("root", nil, []string{"/"})
	add("api", nil, []string{"/api"})
	add("apiv1", nil, []string{"/api/v1"})
	add("wild", []string{"*.example.com"}, []string{"/"})
	add("plain", []string{"www.example.com"}, []string{"/"})
	add("suffix", []string{"shop.*"}, nil)
	cases := []struct{ host, path, want string }{
		{"x.org", "/", "root"},
		{"x.org", "/api/x", "api"},
		{"x.org", "/api/v1/y", "apiv1"},
		{"a.example.com", "/api", "wild"},
		{"www.example.com:8000", "/api", "plain"},
		{"shop.de", "/z", "suffix"},
	}
	for _, c := range cases {
		r := httptest.NewRequest("GET", "http://"+c.host+c.path, nil)
		rt, _, _ := k.match(r)
		if rt == nil || rt.Name != c.want {
			t.Errorf("%s%s → %v, want %s", c.host, c.path, rt, c.want)
		}
	}
	if got := upstreamURI(&Route{}, &Service{Path: "/base"}, "/api/x", "/api"); got != "/base/x" {
		t.Errorf("upstreamURI = %s", got)
	}
	if got := upstreamURI(&Route{StripPath: Bool(false)}, &Service{}, "/api/x", "/api"); got != "/api/x" {
		t.Errorf("upstreamURI = %s", got)
	}
}

func TestMethodNames(t *testing.T) {
	pm := protoMethods()
	for _, want := range []string{"kong.request.get_path", "kong.client.get_forwarded_ip", "kong.ctx.shared.set",
		"kong.ctx.shared.get", "kong.service.request.set_header", "kong.nginx.get_tls1_version_str", "kong.log.serialize"} {
		if _, ok := pm[want]; !ok {
			t.Errorf("%s not derived from the proto", want)
		}
	}
	for name := range pdkMethods {
		if _, ok := pm[name]; !ok {
			t.Errorf("harness implements %s, which Kong's proto does not declare", name)
		}
	}
}

// Kong's first sequence is 2 (msg_id incremented twice), then 3, 4, ...
func TestSequence(t *testing.T) {
	r := newRPC("/nonexistent", time.Second, 1)
	if a, b := r.nextSequence(), r.nextSequence(); a != 2 || b != 3 {
		t.Fatalf("sequences %d %d", a, b)
	}
}
