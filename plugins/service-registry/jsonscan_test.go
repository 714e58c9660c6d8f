package main

import (
	"encoding/json"
	"strings"
	"testing"
)

// topLevel sees exactly the keys encoding/json sees, with the same values.
func FuzzTopLevel(f *testing.F) {
	f.Add(serializedDoc(502, "kong", "10.0.0.1:80::failed", "10.0.0.1:80"))
	f.Add(realisticDoc("127.0.0.1", 8080))
	f.Add(`{}`)
	f.Add(` { "a" : [1, {"b":"}\"]"}] , "c":null,"d":-1.5e3 } `)
	f.Add(`{"a":1,}`)
	f.Fuzz(func(t *testing.T, doc string) {
		var want map[string]json.RawMessage
		wantErr := json.Unmarshal([]byte(doc), &want)
		got := map[string]string{}
		ok := topLevel([]byte(doc), func(k, v []byte) { got[string(k)] = string(v) })
		if wantErr != nil {
			return // malformed input: topLevel may accept a superset, never panics
		}
		if !ok {
			if strings.Contains(doc, `\u`) || strings.ContainsAny(doc, "\x00\x1f") {
				return
			}
			t.Fatalf("valid object refused: %q", doc)
		}
		for k, v := range want {
			if g, found := got[k]; found && !jsonEqual(g, string(v)) {
				t.Fatalf("key %q: got %s want %s", k, g, v)
			}
		}
	})
}

func jsonEqual(a, b string) bool {
	var x, y any
	if json.Unmarshal([]byte(a), &x) != nil || json.Unmarshal([]byte(b), &y) != nil {
		return false
	}
	xa, _ := json.Marshal(x)
	ya, _ := json.Marshal(y)
	return string(xa) == string(ya)
}
