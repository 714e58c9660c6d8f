package kongbench

import (
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"
)

type wrkResult struct {
	cpuNs    int64 // Kong worker + plugin server CPU during the run
	rps      float64
	requests int64
	non2xx   int64
	errors   int64
}

var (
	reRPS    = regexp.MustCompile(`Requests/sec:\s+([0-9.]+)`)
	reReqs   = regexp.MustCompile(`(\d+) requests in`)
	reNon2xx = regexp.MustCompile(`Non-2xx or 3xx responses: (\d+)`)
	reSock   = regexp.MustCompile(`Socket errors: connect (\d+), read (\d+), write (\d+), timeout (\d+)`)
)

// runWrk runs wrk with c connections for secs seconds (one thread for c=1,
// two otherwise: the machine has 2 cores).
func runWrk(t *testing.T, url string, c, secs int) wrkResult {
	t.Helper()
	threads := min(c, 2)
	out, err := exec.Command("wrk", "-t"+strconv.Itoa(threads), "-c"+strconv.Itoa(c),
		"-d"+strconv.Itoa(secs)+"s", url).CombinedOutput()
	if err != nil {
		t.Fatalf("wrk %s: %v\n%s", url, err, out)
	}
	s := string(out)
	m := reRPS.FindStringSubmatch(s)
	if m == nil {
		t.Fatalf("wrk output without Requests/sec:\n%s", s)
	}
	var w wrkResult
	w.rps, _ = strconv.ParseFloat(m[1], 64)
	if m := reReqs.FindStringSubmatch(s); m != nil {
		w.requests, _ = strconv.ParseInt(m[1], 10, 64)
	}
	if m := reNon2xx.FindStringSubmatch(s); m != nil {
		w.non2xx, _ = strconv.ParseInt(m[1], 10, 64)
	}
	if m := reSock.FindStringSubmatch(s); m != nil {
		for _, x := range m[1:] {
			n, _ := strconv.ParseInt(x, 10, 64)
			w.errors += n
		}
	}
	return w
}

// pdkRequests is how many requests the PDK count sends per route.
const pdkRequests = 300

// countPDK counts the PDK calls one request of route r makes, on the plugin
// side: strace records the plugin server's writes to its Unix sockets while
// pdkRequests requests go through r, and they are cut into go-pdk frames (a
// 4-byte length, then the data). The same is done for the empty plugin (0
// PDK calls: only the event frames). A PDK call is 2 frames from the plugin
// (method, arguments), so the difference in frames per request over 2 is
// the PDK calls per request.
func countPDK(t *testing.T, k *kong, r route) float64 {
	t.Helper()
	if r.plugin == empty {
		return 0
	}
	base := pluginFrames(t, k, empty, "/b")
	n := pluginFrames(t, k, r.plugin, "/"+r.name)
	return (n - base) / 2
}

// pluginFrames is the frames the plugin server writes to Kong per request
// of path.
func pluginFrames(t *testing.T, k *kong, plugin, path string) float64 {
	t.Helper()
	pid, err := k.pluginPID(plugin)
	if err != nil {
		t.Fatal(err)
	}
	out := filepath.Join(t.TempDir(), "strace.out")
	cmd := exec.Command("strace", "-f", "-qq", "-yy", "-xx", "-s", "1048576", "-e", "trace=write", "-o", out, "-p", strconv.Itoa(pid))
	if err := cmd.Start(); err != nil {
		t.Fatalf("strace: %v", err)
	}
	defer func() { _ = cmd.Process.Kill(); _ = cmd.Wait() }()
	// attached when every thread of the process shows a tracer
	deadline := time.Now().Add(10 * time.Second)
	for !allTraced(pid) {
		if time.Now().After(deadline) {
			t.Fatal("strace did not attach within 10 s")
		}
		time.Sleep(10 * time.Millisecond)
	}
	cl := &http.Client{}
	for i := 0; i < pdkRequests; i++ {
		resp, err := cl.Get(k.url(path))
		if err != nil {
			t.Fatal(err)
		}
		_, _ = io.Copy(io.Discard, resp.Body)
		resp.Body.Close()
	}
	// the log phase runs after the response: let the last one finish
	time.Sleep(200 * time.Millisecond)
	_ = cmd.Process.Signal(syscall.SIGINT)
	_ = cmd.Wait()
	b, err := os.ReadFile(out)
	if err != nil {
		t.Fatal(err)
	}
	if d := os.Getenv("KONGBENCH_TRACE_DIR"); d != "" {
		_ = os.WriteFile(filepath.Join(d, plugin+strings.ReplaceAll(path, "/", "_")+".strace"), b, 0o644)
	}
	return float64(countFrames(string(b))) / pdkRequests
}

// reWrite matches a write to a Unix socket in strace -yy -xx output: the
// fd and the bytes (hex escaped, whole with a large -s).
var reWrite = regexp.MustCompile(`write\((\d+)<UNIX.*?\]>, "((?:\\x[0-9a-f]{2})*)"`)

// countFrames reads each socket's writes as one byte stream and cuts it
// into frames (a 4-byte little-endian length, then that many bytes),
// however the writer split or joined them.
func countFrames(trace string) int {
	type stream struct {
		buf  []byte
		need int // bytes of the current frame's data still to come
	}
	streams := map[string]*stream{}
	frames := 0
	for _, l := range strings.Split(trace, "\n") {
		m := reWrite.FindStringSubmatch(l)
		if m == nil {
			continue
		}
		st := streams[m[1]]
		if st == nil {
			st = &stream{}
			streams[m[1]] = st
		}
		hex := m[2]
		for i := 0; i+4 <= len(hex); i += 4 {
			v, _ := strconv.ParseUint(hex[i+2:i+4], 16, 8)
			if st.need > 0 {
				st.need--
				continue
			}
			st.buf = append(st.buf, byte(v))
			if len(st.buf) == 4 {
				st.need = int(st.buf[0]) | int(st.buf[1])<<8 | int(st.buf[2])<<16 | int(st.buf[3])<<24
				st.buf = st.buf[:0]
				frames++
			}
		}
	}
	return frames
}

func allTraced(pid int) bool {
	tasks, err := os.ReadDir(fmt.Sprintf("/proc/%d/task", pid))
	if err != nil {
		return false
	}
	for _, e := range tasks {
		if tracerPID(fmt.Sprintf("/proc/%d/task/%s/status", pid, e.Name())) == 0 {
			return false
		}
	}
	return true
}

func tracerPID(status string) int {
	b, err := os.ReadFile(status)
	if err != nil {
		return 0
	}
	for _, l := range strings.Split(string(b), "\n") {
		if v, ok := strings.CutPrefix(l, "TracerPid:"); ok {
			n, _ := strconv.Atoi(strings.TrimSpace(v))
			return n
		}
	}
	return 0
}
