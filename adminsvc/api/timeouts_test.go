package api

import (
	"fmt"
	"io"
	"net"
	"testing"
	"time"
)

// serve runs the API on a loopback port until the test ends.
func (a *testAPI) serve(t *testing.T) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	done := make(chan error, 1)
	go func() { done <- a.srv.Serve(ln) }()
	t.Cleanup(func() {
		_ = a.srv.e.Close()
		<-done
	})
	return ln.Addr().String()
}

// TestSlowHeadersCutAtReadTimeout: with SR_READ_TIMEOUT below 10 s, a
// client trickling its headers is cut at the read timeout, not after the
// fixed 10 s header timeout (issue 13, defect 7).
func TestSlowHeadersCutAtReadTimeout(t *testing.T) {
	const readTimeout = 300 * time.Millisecond
	a := newTestAPI(t, func(c *Config) { c.ReadTimeout = readTimeout })
	addr := a.serve(t)
	c, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	start := time.Now()
	closed := make(chan time.Duration, 1)
	go func() {
		_, _ = io.Copy(io.Discard, c) // returns when the server closes
		closed <- time.Since(start)
	}()
	fmt.Fprintf(c, "GET /health HTTP/1.1\r\nHost: x\r\n")
	tick := time.NewTicker(50 * time.Millisecond)
	defer tick.Stop()
	for i := 0; ; i++ {
		select {
		case took := <-closed:
			// 10× the read timeout: load cannot break it, the old fixed
			// 10 s header timeout would.
			if took > 10*readTimeout {
				t.Fatalf("slow headers cut after %v, read timeout %v", took, readTimeout)
			}
			return
		case <-tick.C:
			if _, err := fmt.Fprintf(c, "X-%d: y\r\n", i); err != nil {
				return // cut
			}
			if time.Since(start) > 15*time.Second {
				t.Fatalf("slow headers still read after %v, read timeout %v", time.Since(start), readTimeout)
			}
		}
	}
}
