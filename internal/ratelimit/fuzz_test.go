package ratelimit

import (
	"crypto/sha256"
	"encoding/hex"
	"strings"
	"testing"
)

// FuzzKey: rate-limit identities come from the client (headers, forwarded
// IPs). Whatever they hold, the Redis key keeps its Cluster hash tag intact
// (no braces from the value), stays bounded, and two different identities
// never share a counter (one client cannot spend another's quota).
func FuzzKey(f *testing.F) {
	f.Add("plugin-1", uint8(4), "alice", "plugin-1", uint8(4), "bob")
	f.Add("s", uint8(2), "1.2.3.4", "s:ip", uint8(0), "1.2.3.4")
	f.Add("s", uint8(4), "a:b", "s", uint8(4), "a%3Ab")
	f.Add("s", uint8(4), "}{", "s", uint8(4), "%7D%7B")
	f.Add("s", uint8(4), "#", "s", uint8(4), "%23")
	// limit_by is one of the config's names (Kong's schema enforces it);
	// scope and value are what varies, value being client-controlled.
	names := []LimitBy{ByService, ByRoute, ByIP, ByConsumer, ByHeader}
	f.Fuzz(func(t *testing.T, s1 string, b1 uint8, v1, s2 string, b2 uint8, v2 string) {
		by1, by2 := names[int(b1)%len(names)], names[int(b2)%len(names)]
		k1 := Key(s1, by1, v1)
		k2 := Key(s2, by2, v2)
		for _, k := range []string{k1, k2} {
			rk := redisKey("sr", k, PerSecond(1, 0))
			if strings.Count(rk, "{") != 1 || strings.Count(rk, "}") != 1 {
				t.Fatalf("value breaks the hash tag: %q", rk)
			}
		}
		if len(escape(v1)) > 3*128 {
			t.Fatalf("unbounded key part for a %d-byte value", len(v1))
		}
		if k1 == k2 && (s1 != s2 || by1 != by2 || v1 != v2) {
			t.Fatalf("identities (%q,%q,%q) and (%q,%q,%q) share key %q", s1, by1, v1, s2, by2, v2, k1)
		}
	})
}

// TestKeyHashFormCollision: a long value is replaced by "#" + its hash; a
// short value spelled like that hash must not land on the same counter.
func TestKeyHashFormCollision(t *testing.T) {
	long := strings.Repeat("x", 200)
	sum := sha256.Sum256([]byte(long))
	forged := "#" + hex.EncodeToString(sum[:16])
	if k := Key("s", ByHeader, long); k == Key("s", ByHeader, forged) {
		t.Fatalf("a value spelled like the hash of a long value shares its counter %q", k)
	}
	if got, want := Key("s", ByHeader, forged), "s:header:%23"+forged[1:]; got != want {
		t.Fatalf("Key = %q, want %q", got, want)
	}
}
