package translator

import "testing"

func TestUpstreamNamesStayDistinct(t *testing.T) {
	names := []string{
		"sr-api.example.com_v2", "sr-api.example.com_V2", "sr-a.com_-0123456789ab", "sr-a.com_~0123456789ab",
		"sr--.example.com_~5d0c2f3a9b1e", "sr-x.com_a-", "sr-x.com_a",
	}
	seen := map[string]string{}
	for _, n := range names {
		u := upstreamName(n)
		if other, dup := seen[u]; dup {
			t.Fatalf("%s and %s share upstream %s", n, other, u)
		}
		seen[u] = n
		if !validName(u) {
			t.Fatalf("%s: invalid name %s", n, u)
		}
		for _, l := range splitLabels(u) {
			if l == "" || l[len(l)-1] == '-' {
				t.Fatalf("%s: bad label in %s", n, u)
			}
		}
	}
	if got := upstreamName("sr-api.example.com_v2"); got != "sr-api.example.com_v2.upstream" {
		t.Fatalf("readable names stay readable: %s", got)
	}
}

func splitLabels(s string) []string {
	var out []string
	start := 0
	for i := 0; i <= len(s); i++ {
		if i == len(s) || s[i] == '.' {
			out = append(out, s[start:i])
			start = i + 1
		}
	}
	return out
}
