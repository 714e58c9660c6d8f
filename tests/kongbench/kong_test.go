package kongbench

import (
	"context"
	"fmt"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"
)

// kong is one real Kong started by the build's kong-start.sh: DB-less, one
// worker, the given plugin servers, in its own prefix and ports.
type kong struct {
	realkong string
	prefix   string
	proxy    int
	admin    int
}

// startKong starts Kong with the plugin binaries (the first is the main
// one, the others KONG_EXTRA_PLUGINS) and the declarative config yml.
func startKong(t *testing.T, realkong, prefix string, yml string, plugins []string) *kong {
	t.Helper()
	k := &kong{realkong: realkong, prefix: prefix, proxy: freePort(t), admin: freePort(t)}
	cmd := exec.Command(filepath.Join(realkong, "bin", "kong-start.sh"), plugins[0], yml)
	cmd.Env = append(os.Environ(),
		"REALKONG="+realkong,
		"KONG_PREFIX_DIR="+prefix,
		"KONG_PROXY_PORT="+strconv.Itoa(k.proxy),
		"KONG_ADMIN_PORT="+strconv.Itoa(k.admin),
		"KONG_EXTRA_PLUGINS="+strings.Join(plugins[1:], " "),
		// the access log is a write per request that is Kong's, not ours:
		// off, so both sides of every ratio pay the same (nothing)
		"KONG_PROXY_ACCESS_LOG=off",
		"KONG_LOG_LEVEL=warn",
	)
	out, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("kong-start.sh: %v\n%s", err, out)
	}
	t.Cleanup(k.stop)
	return k
}

func (k *kong) stop() {
	cmd := exec.Command(filepath.Join(k.realkong, "bin", "kong-stop.sh"))
	cmd.Env = append(os.Environ(), "REALKONG="+k.realkong, "KONG_PREFIX_DIR="+k.prefix)
	_ = cmd.Run()
}

func (k *kong) url(path string) string { return fmt.Sprintf("http://127.0.0.1:%d%s", k.proxy, path) }

// pluginPID is the pid of the running plugin server called name (the
// supervisor starts <prefix>/plugins/<name>).
func (k *kong) pluginPID(name string) (int, error) {
	want := filepath.Join(k.prefix, "plugins", name)
	ents, err := os.ReadDir("/proc")
	if err != nil {
		return 0, err
	}
	for _, e := range ents {
		pid, err := strconv.Atoi(e.Name())
		if err != nil {
			continue
		}
		if exe, err := os.Readlink(fmt.Sprintf("/proc/%d/exe", pid)); err == nil && exe == want {
			return pid, nil
		}
	}
	return 0, fmt.Errorf("no running %s", want)
}

// waitRouted polls path until it answers 200 (the plugin server connected,
// registry snapshot loaded), bounded by a generous deadline.
func waitRouted(t *testing.T, url string) {
	t.Helper()
	deadline := time.Now().Add(30 * time.Second)
	var last string
	for time.Now().Before(deadline) {
		resp, err := http.Get(url)
		if err == nil {
			resp.Body.Close()
			if resp.StatusCode == 200 {
				return
			}
			last = resp.Status
		} else {
			last = err.Error()
		}
		time.Sleep(50 * time.Millisecond)
	}
	t.Fatalf("%s not routed within 30 s: %s", url, last)
}

// freePort is a free loopback port in perf's range 22000-22999 (the
// machine's ports are split between helpers), never one picked before in
// this process (Kong binds them later, so a second pick could repeat it).
func freePort(t *testing.T) int {
	t.Helper()
	start := int(time.Now().UnixNano() % 1000)
	for i := 0; i < 1000; i++ {
		p := 22000 + (start+i)%1000
		if picked[p] {
			continue
		}
		l, err := net.Listen("tcp", "127.0.0.1:"+strconv.Itoa(p))
		if err == nil {
			l.Close()
			picked[p] = true
			return p
		}
	}
	t.Fatal("no free port in 22000-22999")
	return 0
}

var picked = map[int]bool{}

// backend is a fast local HTTP server answering 200 "ok".
func startBackend(t *testing.T) string {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	body := []byte("ok")
	srv := &http.Server{Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "text/plain")
		_, _ = w.Write(body)
	})}
	go func() { _ = srv.Serve(l) }()
	t.Cleanup(func() { _ = srv.Shutdown(context.Background()) })
	return l.Addr().String()
}
