package ratelimit

import "testing"

// TestKeyIPv6Allocs: every IPv6 client's key needs escaping (its colons),
// and the key is built on every request before the deny-cache lookup, so
// escaping must not build its replacer per call (that cost ~9 allocations
// and ~4.8 µs per request).
func TestKeyIPv6Allocs(t *testing.T) {
	const ip = "2001:db8:85a3::8a2e:370:7334"
	if got, want := Key("p1", ByIP, ip), "p1:ip:2001%3Adb8%3A85a3%3A%3A8a2e%3A370%3A7334"; got != want {
		t.Fatalf("Key = %q, want %q", got, want)
	}
	// The replacer's buffer and string for the escaped value, the joined key.
	if n := testing.AllocsPerRun(200, func() { _ = Key("p1", ByIP, ip) }); n > 3 {
		t.Fatalf("Key of an IPv6 address: %.0f allocations, want ≤ 3", n)
	}
}

func BenchmarkKeyIPv6(b *testing.B) {
	b.ReportAllocs()
	for b.Loop() {
		_ = Key("p1", ByIP, "2001:db8:85a3::8a2e:370:7334")
	}
}
