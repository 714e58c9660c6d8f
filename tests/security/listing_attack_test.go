package security

import (
	"context"
	"fmt"
	"net"
	"net/http"
	"os"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/kong-service-registry/service-registry/internal/redistest"
	"github.com/kong-service-registry/service-registry/internal/registry"
	"github.com/kong-service-registry/service-registry/tests/faults"
)

// TestRoutesListingAttack is issue 13's defect 5: 10 000 routes and 200
// clients that ask for GET /routes and never read. The listing must not
// hold the whole body per client (RSS under 300 MB) nor hold it forever
// (every attacking connection closed within the write timeout).
func TestRoutesListingAttack(t *testing.T) {
	const routes, clients = 10000, 200
	const writeTimeout = 3 * time.Second
	rs := redistest.Start(t, redistest.Options{})
	fillRoutes(t, rs, routes)
	a := faults.StartAdminsvc(t, faults.AdminOptions{RedisURL: rs.URL(), Env: map[string]string{
		"SR_WRITE_TIMEOUT": writeTimeout.String(), "SR_LOG_LEVEL": "error"}})
	pid := a.PID()
	baseRSS := rssMB(t, pid)
	host := strings.TrimPrefix(a.URL, "http://")
	_, portStr, _ := net.SplitHostPort(host)
	port, _ := strconv.Atoi(portStr)
	// Only the attack's connections are counted: drop the idle keep-alive
	// ones of the start-up health checks.
	http.DefaultClient.CloseIdleConnections()
	start := time.Now()
	var conns []net.Conn
	defer func() {
		for _, c := range conns {
			_ = c.Close()
		}
	}()
	for i := 0; i < clients; i++ {
		c, err := net.DialTimeout("tcp", host, 5*time.Second)
		if err != nil {
			t.Fatal(err)
		}
		_ = c.(*net.TCPConn).SetReadBuffer(4096) // and never read
		fmt.Fprintf(c, "GET /routes HTTP/1.1\r\nHost: %s\r\n\r\n", host)
		conns = append(conns, c)
	}
	// Sample until every attacking connection is closed by the server, or
	// long after the write timeout (the bug: never).
	peak, released := baseRSS, time.Duration(0)
	for time.Since(start) < 10*writeTimeout+20*time.Second {
		peak = max(peak, rssMB(t, pid))
		if established(t, port) == 0 {
			released = time.Since(start)
			break
		}
		time.Sleep(100 * time.Millisecond)
	}
	after := rssMB(t, pid)
	t.Logf("RESULT security=listing-attack routes=%d clients=%d rss_base_mb=%d rss_peak_mb=%d rss_after_mb=%d released_after=%v (SR_WRITE_TIMEOUT %v)",
		routes, clients, baseRSS, peak, after, released.Round(100*time.Millisecond), writeTimeout)
	if peak > 300 {
		t.Errorf("RSS peaked at %d MB under the attack (goal < 300 MB)", peak)
	}
	if released == 0 || released > 10*writeTimeout {
		t.Errorf("%d attacking connections still held after %v (write timeout %v)", established(t, port), time.Since(start).Round(time.Second), writeTimeout)
	}
	// A client that reads still gets every route.
	if r := call(t, "GET", a.URL+"/routes", nil); r.Status != 200 || r.Body["total"] != float64(routes) {
		t.Fatalf("after the attack: %d total=%v", r.Status, r.Body["total"])
	}
}

// fillRoutes registers n routes straight into the store (the API's own
// cost is not what is measured).
func fillRoutes(t *testing.T, rs *redistest.Server, n int) {
	t.Helper()
	rdb := rs.Client()
	defer rdb.Close()
	store := registry.NewStore(rdb, registry.Options{Prefix: "sr"})
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	var wg sync.WaitGroup
	errs := make(chan error, 8)
	for w := 0; w < 8; w++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := w; i < n; i += 8 {
				r := registry.Route{Host: fmt.Sprintf("svc%05d.example.com", i), Path: "/api/v1/items",
					Backend: fmt.Sprintf("http://backend-%05d.internal:8080", i), Options: []byte(`{"timeout":"30s"}`)}
				if _, _, err := store.RegisterRoute(ctx, r); err != nil {
					errs <- err
					return
				}
			}
		}()
	}
	wg.Wait()
	close(errs)
	if err := <-errs; err != nil {
		t.Fatal(err)
	}
}

func rssMB(t *testing.T, pid int) int {
	t.Helper()
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		t.Fatal(err)
	}
	for _, line := range strings.Split(string(b), "\n") {
		if f := strings.Fields(line); len(f) >= 2 && f[0] == "VmRSS:" {
			kb, _ := strconv.Atoi(f[1])
			return kb / 1024
		}
	}
	t.Fatal("no VmRSS")
	return 0
}

// established counts the server side of open connections to a loopback
// port (sockets the server has not closed yet): /proc/net/tcp{,6} rows
// whose local port is port, in state 01 (ESTABLISHED) or 08 (CLOSE_WAIT).
func established(t *testing.T, port int) int {
	t.Helper()
	n := 0
	for _, f := range []string{"/proc/net/tcp", "/proc/net/tcp6"} {
		b, err := os.ReadFile(f)
		if err != nil {
			continue
		}
		for _, line := range strings.Split(string(b), "\n")[1:] {
			fs := strings.Fields(line)
			if len(fs) < 4 {
				continue
			}
			_, lport, _ := strings.Cut(fs[1], ":")
			if p, _ := strconv.ParseInt(lport, 16, 32); int(p) == port && (fs[3] == "01" || fs[3] == "08") {
				n++
			}
		}
	}
	return n
}
