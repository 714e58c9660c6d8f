package registry

import (
	"encoding/json"
	"sort"
	"testing"
)

// FuzzDecodeService: the reply of the atomic per-service read script is
// decoded without panicking whatever Redis holds (data written by an older
// version, by hand, or half-migrated), instances come out sorted by id, and
// a service with no metadata is "not found".
func FuzzDecodeService(f *testing.F) {
	f.Add("orders", `["tags","[\"a\",\"b\"]","maintenance","{\"enabled\":true,\"message\":\"m\"}"]`, `["a","{\"id\":\"a\",\"address\":\"h:1\",\"weight\":1}","b","{\"id\":\"b\",\"address\":\"h:2\",\"weight\":2}"]`, "7")
	f.Add("x", `[]`, `[]`, "")
	f.Add("x", `["tags","not json"]`, `["a","{"]`, "-1")
	f.Add("x", `["created","1"]`, `["a","{\"id\":\"a\",\"weight\":\"x\"}",5]`, "9223372036854775808")
	f.Add("x", `["k"]`, `{"not":"a list"}`, "1")
	f.Fuzz(func(t *testing.T, name, meta, insts, version string) {
		var m, in any
		_ = json.Unmarshal([]byte(meta), &m)
		_ = json.Unmarshal([]byte(insts), &in)
		svc, found, err := decodeService(name, []any{m, in, version})
		if err != nil {
			return
		}
		if svc.Name != name {
			t.Fatalf("name %q for %q", svc.Name, name)
		}
		if !found && len(svc.Instances) != 0 {
			t.Fatal("instances for a service not found")
		}
		if !sort.SliceIsSorted(svc.Instances, func(i, j int) bool { return svc.Instances[i].ID < svc.Instances[j].ID }) {
			t.Fatal("instances not sorted by id")
		}
		// Wrong shapes are errors, not panics.
		for _, bad := range []any{nil, "x", []any{}, []any{m, in}} {
			_, _, _ = decodeService(name, bad)
		}
	})
}

// FuzzParseChange: change-feed payloads from Redis pub/sub never panic and
// a decoded change names a service.
func FuzzParseChange(f *testing.F) {
	for _, s := range []string{"7 orders", "", " ", "x y", "1 ", "-1 a b", "99999999999999999999 a"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, payload string) {
		c, ok := ParseChange(payload)
		if ok && c.Service == "" {
			t.Fatalf("change %q has no service", payload)
		}
	})
}
