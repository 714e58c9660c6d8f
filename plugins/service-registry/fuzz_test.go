package main

import (
	"testing"
)

// Whatever Kong (or anything else) sends, decoding never fails and
// compiling never panics: a bad config is a 500 with a message, never a
// dead instance or process.
func FuzzConfigDecode(f *testing.F) {
	for _, seed := range []string{
		`{}`, `null`, `[]`, `"x"`, `{"registry":"redis","redis":{"port":70000}}`,
		`{"redis":{"sentinel_nodes":[{"host":1}],"cluster_nodes":"x"}}`,
		`{"circuit_breaker":{"failure_statuses":[1e99,-1,"a"]}}`,
		`{"__seq__":"x","__plugin_id":5,"service_id":[1]}`, `{"rate_limit":{"burst":1.5}}`,
	} {
		f.Add([]byte(seed))
	}
	f.Fuzz(func(t *testing.T, b []byte) {
		var c Config
		if err := c.UnmarshalJSON(b); err != nil {
			t.Fatalf("decode failed: %v", err)
		}
		cp := c.validate(c.compiled.decodeErrs)
		_ = cp
		if c.Registry == "redis" {
			return // compiling would dial Redis
		}
		if got := c.compile(); got.err == nil && len(cp) > 0 {
			t.Fatalf("errors %v but compiled without error", cp)
		}
	})
}
