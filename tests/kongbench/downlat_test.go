package kongbench

import (
	"fmt"
	"io"
	"net/http"
	"sort"
	"strings"
	"testing"
	"time"
)

// latencies is one round of sequential requests (c=1) to one route: every
// request's latency, so slow ones can be counted, not only a percentile.
type latencies []time.Duration

// hammer sends requests one after another to url for d and records each
// latency. A keep-alive client, as wrk -c1 is.
func hammer(t *testing.T, c *http.Client, url string, d time.Duration) latencies {
	t.Helper()
	var out latencies
	end := time.Now().Add(d)
	for time.Now().Before(end) {
		t0 := time.Now()
		resp, err := c.Get(url)
		if err != nil {
			t.Fatalf("%s: %v", url, err)
		}
		_, _ = io.Copy(io.Discard, resp.Body)
		resp.Body.Close()
		out = append(out, time.Since(t0))
	}
	return out
}

// summary is what a set of rounds of one route says.
type summary struct {
	n              int
	p50, p99, max  time.Duration
	atLeastTimeout int // requests that took timeout_ms or longer
}

func summarize(rounds []latencies, timeout time.Duration) summary {
	var all []time.Duration
	for _, r := range rounds {
		all = append(all, r...)
	}
	sort.Slice(all, func(i, j int) bool { return all[i] < all[j] })
	s := summary{n: len(all)}
	if len(all) == 0 {
		return s
	}
	s.p50, s.p99, s.max = all[len(all)/2], all[len(all)*99/100], all[len(all)-1]
	for _, d := range all {
		if d >= timeout {
			s.atLeastTimeout++
		}
	}
	return s
}

func (s summary) row(what string, timeout time.Duration) string {
	ms := func(d time.Duration) string { return fmt.Sprintf("%.2f", float64(d)/float64(time.Millisecond)) }
	return fmt.Sprintf("| %s | %d | %s | %s | %s | %d |", what, s.n, ms(s.p50), ms(s.p99), ms(s.max), s.atLeastTimeout)
}

func downTable(plain, up, down summary, timeout time.Duration) string {
	var b strings.Builder
	fmt.Fprintf(&b, "| route | requests | p50 ms | p99 ms | max ms | ≥ timeout_ms (%s) |\n|---|---:|---:|---:|---:|---:|\n", timeout)
	for _, r := range []string{
		plain.row("no plugin", timeout),
		up.row("registry=redis + rate limit, Redis up, service without instances (503 from the cached snapshot)", timeout),
		down.row("the same, Redis a black hole, empty cache", timeout),
	} {
		b.WriteString(r + "\n")
	}
	return b.String()
}
