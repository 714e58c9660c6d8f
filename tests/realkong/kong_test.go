package realkong

import (
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"sort"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

const (
	modeDBLess = "dbless"
	modeDB     = "db"
	// modeNode2 is a second DB-less Kong, for the two-node scenarios.
	modeNode2 = "dbless-node2"
	// modeBenchDBLess and modeBenchDB are Kongs with Kong's own defaults
	// (no faster router rebuild) for TestFastPathBench.
	modeBenchDBLess = "bench-dbless"
	modeBenchDB     = "bench-db"
	// envDirs names the Kong builds to run against, space-separated, each
	// a DEST of ../shared/realkong/build.sh (holding bin/kong-start.sh).
	envDirs = "SR_REALKONG_DIRS"
)

// kongDirs returns the Kong builds named by SR_REALKONG_DIRS. Without any:
// skip with how to run the suite, or fail when CI is set (CI never skips).
func kongDirs(t *testing.T) []string {
	t.Helper()
	dirs := strings.Fields(os.Getenv(envDirs))
	if len(dirs) == 0 {
		msg := envDirs + ` is not set, so no real Kong to run against: build one with ../shared/realkong/build.sh ` +
			`and run e.g. ` + envDirs + `="/opt/realkong /opt/realkong39" go test ./tests/realkong/`
		if os.Getenv("CI") != "" {
			t.Fatal("CI is set and " + msg)
		}
		t.Skip(msg)
	}
	return dirs
}

// isDB says whether Kongs of that mode run on Postgres.
func isDB(mode string) bool { return mode == modeDB || mode == modeBenchDB }

// eachKong runs fn once per Kong build (subtest named by Kong's version) on
// that build's shared Kong of the given mode, reset to empty.
func eachKong(t *testing.T, mode string, fn func(t *testing.T, k *kong)) {
	t.Helper()
	for _, dir := range kongDirs(t) {
		t.Run(buildVersion(dir), func(t *testing.T) {
			k := sharedKong(t, dir, mode)
			k.reset(t)
			t0 := time.Now()
			defer func() {
				took := time.Since(t0)
				record(k, took, t.Failed())
				t.Logf("kong %s %s: %s", k.version, k.mode, took.Round(time.Millisecond))
				if t.Failed() {
					t.Logf("kong %s %s logs:\n%s", k.version, k.mode, k.logs())
				}
			}()
			fn(t, k)
		})
	}
}

// tally is the time spent in scenarios per Kong version and mode, and how
// many ran and failed, printed after the tests (go test -v shows it).
type tally struct {
	took         time.Duration
	runs, failed int
}

var (
	talliesMu sync.Mutex
	tallies   = map[string]*tally{}
)

func record(k *kong, took time.Duration, failed bool) {
	talliesMu.Lock()
	defer talliesMu.Unlock()
	key := "kong " + k.version + " " + k.mode
	if tallies[key] == nil {
		tallies[key] = &tally{}
	}
	tl := tallies[key]
	tl.took += took
	tl.runs++
	if failed {
		tl.failed++
	}
}

func printTallies() {
	talliesMu.Lock()
	defer talliesMu.Unlock()
	keys := make([]string, 0, len(tallies))
	for key := range tallies {
		keys = append(keys, key)
	}
	sort.Strings(keys)
	for _, key := range keys {
		tl := tallies[key]
		fmt.Printf("realkong: %-20s %2d scenarios, %d failed, %s in scenarios\n", key, tl.runs, tl.failed, tl.took.Round(time.Millisecond))
	}
	slotsMu.Lock()
	all := make([]*slot, 0, len(slots))
	for _, s := range slots {
		all = append(all, s)
	}
	slotsMu.Unlock()
	for _, s := range all {
		if k, err := s.get(); err == nil { // waits for a start still under way
			fmt.Printf("realkong: kong %s %s started in %s\n", k.version, k.mode, k.startTook.Round(time.Millisecond))
		}
	}
}

// buildVersion reads Kong's version from the build's kong/meta.lua.
func buildVersion(dir string) string {
	src, err := os.ReadFile(filepath.Join(dir, "kong", "kong", "meta.lua"))
	if err != nil {
		return filepath.Base(dir)
	}
	part := func(name string) string {
		m := regexp.MustCompile(name + `\s*=\s*(\d+)`).FindSubmatch(src)
		if m == nil {
			return "x"
		}
		return string(m[1])
	}
	return part("major") + "." + part("minor") + "." + part("patch")
}

// kong is one real Kong started with the build's kong-start.sh: its own
// prefix, ports and (DB mode) Postgres database, shared by the package's
// tests and stopped by TestMain.
type kong struct {
	dir, mode, version string
	prefix, db         string
	proxy, admin       string // base URLs
	startTook          time.Duration
	startEnv           []string // kong-start.sh's environment and arguments, for restart
	startArgs          []string
	pushes             atomic.Int64
}

// slot is the one Kong of a build and mode in this process, started once.
type slot struct {
	dir, mode string
	once      sync.Once
	k         *kong
	err       error
	reported  atomic.Bool
}

var (
	slotsMu sync.Mutex
	slots   = map[string]*slot{} // dir|mode
)

func slotFor(dir, mode string) *slot {
	slotsMu.Lock()
	defer slotsMu.Unlock()
	key := dir + "|" + mode
	if slots[key] == nil {
		slots[key] = &slot{dir: dir, mode: mode}
	}
	return slots[key]
}

func (s *slot) get() (*kong, error) {
	s.once.Do(func() { s.k, s.err = startKong(s.dir, s.mode) })
	return s.k, s.err
}

// startAll starts every Kong the tests will use, one after the other in
// the background (DB-less first: the first tests use them), so the starts
// (mostly Kong's CLI and migrations) overlap the tests.
func startAll(dirs []string) {
	if os.Getenv(envBench) != "" {
		return // the benchmark starts its own Kongs, none of these
	}
	starter.Add(1)
	go func() {
		defer starter.Done()
		for _, mode := range []string{modeDBLess, modeDB, modeNode2} {
			for _, dir := range dirs {
				if stopping.Load() {
					return
				}
				_, _ = slotFor(dir, mode).get()
			}
		}
	}()
}

var (
	starter  sync.WaitGroup
	stopping atomic.Bool // no more background starts: the tests are over
)

// sharedKong returns the build's Kong of that mode, started on first use.
func sharedKong(t *testing.T, dir, mode string) *kong {
	t.Helper()
	s := slotFor(dir, mode)
	k, err := s.get()
	if err != nil {
		t.Fatalf("starting kong %s %s: %v", dir, mode, err)
	}
	if !s.reported.Swap(true) {
		t.Logf("kong %s %s started in %s (proxy %s, admin %s)", k.version, mode, k.startTook.Round(time.Millisecond), k.proxy, k.admin)
	}
	return k
}

// Settings every Kong here gets, besides kong-start.sh's own: a new route
// or plugin in DB mode is picked up by the worker within 1 s instead of 5
// (Kong rebuilds its router and plugin iterator every
// worker_state_update_frequency; db_update_frequency polls cluster events).
// KONG_START_TIMEOUT: a start took 60 s at load 34 on 2 cores (1 to 3 s idle).
// KONG_ALLOW_DEBUG_HEADER: a request with Kong-Debug gets Kong-Route-Name
// (the route Kong matched; off by default in 3.4.2 and 3.9.3 alike).
var kongSettings = []string{"KONG_DB_UPDATE_FREQUENCY=1", "KONG_WORKER_STATE_UPDATE_FREQUENCY=1", "KONG_START_TIMEOUT=240",
	"KONG_ALLOW_DEBUG_HEADER=on"}

func startKong(dir, mode string) (*kong, error) {
	script := filepath.Join(dir, "bin", "kong-start.sh")
	if _, err := os.Stat(script); err != nil {
		return nil, fmt.Errorf("%s names no realkong build: %w", envDirs, err)
	}
	k := &kong{dir: dir, mode: mode}
	var err error
	if k.prefix, err = os.MkdirTemp(tmpDir, "kong-"+mode+"-"); err != nil {
		return nil, err
	}
	empty := k.prefix + ".yml"
	if err := os.WriteFile(empty, []byte("_format_version: \"3.0\"\n"), 0o644); err != nil {
		return nil, err
	}
	env := append(buildEnv(dir), "KONG_PREFIX_DIR="+k.prefix, "KONG_DATABASE=off")
	if mode == modeBenchDBLess || mode == modeBenchDB {
		// Kong's own update frequencies; official Kong's lmdb_map_size (the
		// build's 256m is small for 10 000 routes); Admin API body limit and
		// buffer a 10 000-route declarative config (14 MB) fits in (default
		// 10m each: adminsvc's push is refused with 413; a body buffered to
		// a file gets 400 "Cannot parse JSON body").
		env = append(env, kongSettings[2:]...)
		env = append(env, "KONG_LMDB_MAP_SIZE=2048m", "KONG_NGINX_ADMIN_CLIENT_MAX_BODY_SIZE=64m", "KONG_NGINX_ADMIN_CLIENT_BODY_BUFFER_SIZE=64m")
	} else {
		env = append(env, kongSettings...)
	}
	decl := empty
	if isDB(mode) {
		if k.db, err = createDatabase(dir, mode); err != nil {
			return nil, err
		}
		env = append(env, "KONG_DATABASE=postgres", "KONG_PG_HOST=127.0.0.1", "KONG_PG_PORT=5432", "KONG_PG_DATABASE="+k.db)
		decl = "-"
	}
	// Ports are free when picked, not reserved: try again on a clash.
	for attempt := 0; ; attempt++ {
		proxy, admin, err := freePorts()
		if err != nil {
			return nil, err
		}
		k.proxy = fmt.Sprintf("http://127.0.0.1:%d", proxy)
		k.admin = fmt.Sprintf("http://127.0.0.1:%d", admin)
		cmd := exec.Command(script, pluginBin, decl)
		cmd.Env = append(env, fmt.Sprintf("KONG_PROXY_PORT=%d", proxy), fmt.Sprintf("KONG_ADMIN_PORT=%d", admin))
		k.startEnv, k.startArgs = cmd.Env, cmd.Args[1:]
		t0 := time.Now()
		out, err := cmd.CombinedOutput()
		k.startTook = time.Since(t0)
		if err == nil {
			break
		}
		if attempt == 2 || !bytes.Contains(out, []byte("in use")) {
			k.stop()
			return nil, fmt.Errorf("%s: %w\n%s", script, err, out)
		}
	}
	var root struct{ Version string }
	if err := k.adminJSON("GET", "/", nil, &root); err != nil {
		k.stop()
		return nil, err
	}
	k.version = root.Version
	return k, nil
}

// buildEnv is this process's environment for a build's scripts: REALKONG
// set to the build (the scripts prefer an inherited one over their own
// location), and no inherited Kong setting but the log level (a
// KONG_DATABASE or KONG_PG_DATABASE exported for another tool must not
// reach these Kongs).
func buildEnv(dir string) []string {
	env := []string{"REALKONG=" + dir}
	for _, kv := range os.Environ() {
		name, _, _ := strings.Cut(kv, "=")
		if name == "REALKONG" || strings.HasPrefix(name, "KONG_") && name != "KONG_LOG_LEVEL" {
			continue
		}
		env = append(env, kv)
	}
	return env
}

// down stops Kong (kong-stop.sh) and keeps its prefix, ports and database.
func (k *kong) down(t testing.TB) {
	t.Helper()
	cmd := exec.Command(filepath.Join(k.dir, "bin", "kong-stop.sh"))
	cmd.Env = append(buildEnv(k.dir), "KONG_PREFIX_DIR="+k.prefix)
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("kong-stop.sh: %v\n%s", err, out)
	}
}

// up starts a Kong stopped with down again, on the same ports: DB-less, it
// comes back with the empty config it was started with (DB mode: the
// database is reset).
func (k *kong) up(t testing.TB) {
	t.Helper()
	cmd := exec.Command(filepath.Join(k.dir, "bin", "kong-start.sh"), k.startArgs...)
	cmd.Env = k.startEnv
	t0 := time.Now()
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("kong-start.sh again: %v\n%s", err, out)
	}
	t.Logf("kong %s %s restarted in %s", k.version, k.mode, time.Since(t0).Round(time.Millisecond))
}

// stop stops Kong and drops its database.
func (k *kong) stop() {
	cmd := exec.Command(filepath.Join(k.dir, "bin", "kong-stop.sh"))
	cmd.Env = append(buildEnv(k.dir), "KONG_PREFIX_DIR="+k.prefix)
	if out, err := cmd.CombinedOutput(); err != nil {
		fmt.Fprintf(os.Stderr, "realkong: kong-stop.sh %s: %v\n%s", k.prefix, err, out)
	}
	if k.db != "" {
		if out, err := psql("DROP DATABASE IF EXISTS " + k.db + " WITH (FORCE)"); err != nil {
			fmt.Fprintf(os.Stderr, "realkong: dropping %s: %v\n%s", k.db, err, out)
		}
	}
}

// stopKongs stops every Kong started (waiting for starts under way).
func stopKongs() {
	stopping.Store(true)
	starter.Wait()
	slotsMu.Lock()
	all := make([]*slot, 0, len(slots))
	for _, s := range slots {
		all = append(all, s)
	}
	slotsMu.Unlock()
	for _, s := range all {
		if k, err := s.get(); err == nil {
			k.stop()
		}
	}
}

// freePorts picks two free loopback ports (free when picked, not reserved).
func freePorts() (int, int, error) {
	var ports [2]int
	for i := range ports {
		l, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			return 0, 0, err
		}
		ports[i] = l.Addr().(*net.TCPAddr).Port
		defer l.Close()
	}
	return ports[0], ports[1], nil
}

// pgStartedBy is the services.sh that started Postgres for this run (it is
// stopped at the end); empty when one already answered.
var (
	pgMu        sync.Mutex
	pgStartedBy string
)

// createDatabase makes this process's own database for one Kong (owner
// kong): kong-start.sh resets the database it is given.
func createDatabase(dir, mode string) (string, error) {
	pgMu.Lock()
	defer pgMu.Unlock()
	if c, err := net.DialTimeout("tcp", "127.0.0.1:5432", time.Second); err == nil {
		_ = c.Close()
	} else {
		svc := filepath.Join(dir, "bin", "services.sh")
		cmd := exec.Command(svc, "start", "postgres")
		cmd.Env = buildEnv(dir)
		if out, err := cmd.CombinedOutput(); err != nil {
			return "", fmt.Errorf("%s start postgres: %w\n%s", svc, err, out)
		}
		if pgStartedBy == "" {
			pgStartedBy = svc
		}
	}
	name := fmt.Sprintf("realkong_%d_%s", os.Getpid(), strings.NewReplacer(".", "", "/", "_").Replace(buildVersion(dir)))
	if mode != modeDB {
		name += "_" + strings.ReplaceAll(mode, "-", "_") // realkong_<pid>_<version>_bench_db
	}
	if out, err := psql("CREATE DATABASE " + name + " OWNER kong"); err != nil {
		return "", fmt.Errorf("creating database %s: %w\n%s", name, err, out)
	}
	return name, nil
}

func psql(sql string) ([]byte, error) {
	return exec.Command("psql", "-X", "-q", "-h", "127.0.0.1", "-p", "5432", "-U", "postgres", "-d", "postgres", "-c", sql).CombinedOutput()
}

// logs returns the tails of Kong's error.log and the plugin server's log.
// errorLogSize is the size of Kong's error.log now (errorLogSince).
func (k *kong) errorLogSize() int64 {
	fi, err := os.Stat(filepath.Join(k.prefix, "logs", "error.log"))
	if err != nil {
		return 0
	}
	return fi.Size()
}

// errorLogSince is what Kong wrote to error.log after offset.
func (k *kong) errorLogSince(offset int64) string {
	data, _ := os.ReadFile(filepath.Join(k.prefix, "logs", "error.log"))
	if int64(len(data)) < offset {
		return string(data)
	}
	return string(data[offset:])
}

func (k *kong) logs() string {
	var b strings.Builder
	for _, f := range []string{"error.log", "service-registry.log"} {
		data, _ := os.ReadFile(filepath.Join(k.prefix, "logs", f))
		fmt.Fprintf(&b, "---- %s (tail)\n%s\n", f, tail(string(data), 4000))
	}
	return b.String()
}

func tail(s string, n int) string {
	if len(s) > n {
		return s[len(s)-n:]
	}
	return s
}

// pluginPID is the running plugin server's pid (written by the supervisor).
func (k *kong) pluginPID() int {
	b, _ := os.ReadFile(filepath.Join(k.prefix, "pids", "service-registry.pid"))
	pid, _ := strconv.Atoi(strings.TrimSpace(string(b)))
	return pid
}

// adminError is a non-2xx Admin API answer.
type adminError struct {
	Status int
	Body   map[string]any
	Raw    string
}

func (e *adminError) Error() string { return fmt.Sprintf("kong admin %d: %s", e.Status, e.Raw) }

var adminHTTP = &http.Client{Timeout: 30 * time.Second}

// adminJSON calls the Admin API with a JSON body; a non-2xx answer is an
// *adminError. out, when given, receives the decoded answer.
func (k *kong) adminJSON(method, path string, body, out any) error {
	var rd io.Reader
	if body != nil {
		b, err := json.Marshal(body)
		if err != nil {
			return err
		}
		rd = bytes.NewReader(b)
	}
	return k.admin0(method, path, "application/json", rd, out)
}

func (k *kong) admin0(method, path, ctype string, body io.Reader, out any) error {
	req, err := http.NewRequest(method, k.admin+path, body)
	if err != nil {
		return err
	}
	if body != nil {
		req.Header.Set("Content-Type", ctype)
	}
	resp, err := adminHTTP.Do(req)
	if err != nil {
		return fmt.Errorf("%s %s: %w", method, path, err)
	}
	defer resp.Body.Close()
	raw, _ := io.ReadAll(resp.Body)
	if resp.StatusCode/100 != 2 {
		e := &adminError{Status: resp.StatusCode, Raw: string(raw)}
		_ = json.Unmarshal(raw, &e.Body)
		return e
	}
	if out != nil && len(raw) > 0 {
		if err := json.Unmarshal(raw, out); err != nil {
			return fmt.Errorf("%s %s: decoding %s: %w", method, path, raw, err)
		}
	}
	return nil
}

// list reads every entity of a kind (one page of 1000 is plenty here).
func (k *kong) list(t testing.TB, kind string) []map[string]any {
	t.Helper()
	var page struct {
		Data []map[string]any
		Next *string
	}
	if err := k.adminJSON("GET", "/"+kind+"?size=1000", nil, &page); err != nil {
		t.Fatal(err)
	}
	if page.Next != nil {
		t.Fatalf("more than 1000 %s", kind)
	}
	return page.Data
}

// find returns the entity of a kind by name or id.
func (k *kong) find(t testing.TB, kind, nameOrID string) (map[string]any, bool) {
	t.Helper()
	var e map[string]any
	err := k.adminJSON("GET", "/"+kind+"/"+nameOrID, nil, &e)
	if ae, ok := err.(*adminError); ok && ae.Status == 404 {
		return nil, false
	}
	if err != nil {
		t.Fatal(err)
	}
	return e, true
}

// reset empties Kong: an empty declarative config (DB-less), or every
// entity deleted (DB mode; plugins and routes before what they reference).
func (k *kong) reset(t testing.TB) {
	t.Helper()
	if !isDB(k.mode) {
		if err := k.adminJSON("POST", "/config", map[string]any{"_format_version": "3.0"}, nil); err != nil {
			t.Fatalf("emptying kong: %v", err)
		}
		return
	}
	for _, kind := range []string{"plugins", "routes", "services", "upstreams", "consumers"} {
		for _, e := range k.list(t, kind) {
			if err := k.adminJSON("DELETE", "/"+kind+"/"+e["id"].(string), nil, nil); err != nil {
				t.Fatalf("emptying kong: %v", err)
			}
		}
	}
}

// push sends a whole declarative config (POST /config, DB-less) and waits
// until Kong's worker serves it: a marker route added to it answers this
// push's number. Kong rebuilds router and plugins together on reconfigure,
// so plugin configs are live then too.
func (k *kong) push(t testing.TB, services, upstreams []map[string]any) error {
	t.Helper()
	marker := fmt.Sprintf("push %d", k.pushes.Add(1))
	services = append(services, map[string]any{
		"name": "realkong-marker", "host": "127.0.0.1", "port": 9,
		"routes": []map[string]any{{"name": "realkong-marker", "paths": []string{"/__realkong_marker"}}},
		"plugins": []map[string]any{{"name": "request-termination",
			"config": map[string]any{"status_code": 200, "message": marker}}},
	})
	decl := map[string]any{"_format_version": "3.0", "services": services, "upstreams": upstreams}
	if err := k.adminJSON("POST", "/config", decl, nil); err != nil {
		return err
	}
	c := &http.Client{Timeout: 10 * time.Second}
	waitFor(t, 10*time.Second, "kong serving "+marker, func() bool {
		status, body, _ := getURL(t, c, k.proxy+"/__realkong_marker", "")
		return status == 200 && message(body) == marker
	})
	return nil
}

// failOpen: Kong 3.4 skips a plugin whose server it cannot reach and
// proxies; 3.9 answers 500 (KONG-FACTS.md).
func (k *kong) failOpen() bool { return strings.HasPrefix(k.version, "3.4.") }
