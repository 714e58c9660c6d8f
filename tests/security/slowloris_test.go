package security

import (
	"bufio"
	"fmt"
	"net"
	"strings"
	"testing"
	"time"

	"github.com/kong-service-registry/service-registry/internal/redistest"
	"github.com/kong-service-registry/service-registry/tests/faults"
)

// A client trickling its body one byte at a time cannot hold a connection
// (and a goroutine) past SR_READ_TIMEOUT; normal clients are unaffected.
func TestSlowBodyCutOff(t *testing.T) {
	rs := redistest.Start(t, redistest.Options{})
	a := faults.StartAdminsvc(t, faults.AdminOptions{RedisURL: rs.URL(), Env: map[string]string{"SR_READ_TIMEOUT": "1s"}})
	host := strings.TrimPrefix(a.URL, "http://")
	c, err := net.DialTimeout("tcp", host, 2*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	body := `{"host":"slow.test","path":"/a","backend":"http://10.0.0.1:80"}`
	fmt.Fprintf(c, "POST /register HTTP/1.1\r\nHost: %s\r\nContent-Type: application/json\r\nContent-Length: %d\r\n\r\n", host, len(body))
	t0 := time.Now()
	// The server cuts the connection (a write fails) or answers an error
	// (a line to read) once the read timeout passes.
	answered := make(chan struct{})
	go func() {
		defer close(answered)
		_ = c.SetReadDeadline(time.Now().Add(10 * time.Second))
		_, _ = bufio.NewReader(c).ReadString('\n')
	}()
	for i := 0; i < len(body) && time.Since(t0) < 8*time.Second; i++ {
		select {
		case <-answered:
			i = len(body)
			continue
		default:
		}
		if _, err := c.Write([]byte{body[i]}); err != nil {
			break
		}
		time.Sleep(200 * time.Millisecond) // the attack: one byte every 200 ms
	}
	took := time.Since(t0)
	t.Logf("RESULT security=slow-body cut_after=%v (SR_READ_TIMEOUT 1s)", took)
	if took > 6*time.Second {
		t.Fatalf("a trickled body held the connection for %v with a 1 s read timeout", took)
	}
	if r := call(t, "GET", a.URL+"/routes", nil); r.Status != 200 || r.Body["total"] != 0.0 {
		t.Fatalf("after the slow client: %d %s", r.Status, r.Raw)
	}
}
