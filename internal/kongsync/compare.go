package kongsync

import (
	"encoding/json"
	"sort"
	"strconv"
)

// The comparisons below decide drift: a desired value (Go types from the
// translator) against what Kong returned (decoded JSON). They compare only
// what we set, since Kong fills defaults and adds fields we never send, and
// they compare lists of scalars as sets, since Kong keeps sets unordered.

// sameSet reports whether two string lists hold the same elements.
func sameSet(want, have []string) bool {
	if len(want) != len(have) {
		return false
	}
	if len(want) == 1 {
		return want[0] == have[0]
	}
	w := append([]string(nil), want...)
	h := append([]string(nil), have...)
	sort.Strings(w)
	sort.Strings(h)
	for i := range w {
		if w[i] != h[i] {
			return false
		}
	}
	return true
}

// sameJSON reports whether every field of want has the same value in have
// (want: Go values; have: decoded JSON).
func sameJSON(want, have any) bool {
	switch w := want.(type) {
	case map[string]any:
		h, ok := have.(map[string]any)
		if !ok {
			return false
		}
		for k, wv := range w {
			if !sameJSON(wv, h[k]) {
				return false
			}
		}
		return true
	case []string:
		list := make([]any, len(w))
		for i, s := range w {
			list[i] = s
		}
		return sameList(list, have)
	case []any:
		return sameList(w, have)
	case nil, string, bool:
		return want == have
	}
	if n, ok := number(want); ok {
		h, ok := number(have)
		return ok && h == n
	}
	// Another Go type (a struct in a plugin config): compare what
	// encoding/json makes of it.
	b, err := json.Marshal(want)
	if err != nil {
		return false
	}
	var v any
	if json.Unmarshal(b, &v) != nil {
		return false
	}
	return sameJSON(v, have)
}

func sameList(w []any, have any) bool {
	h, ok := have.([]any)
	if !ok {
		return len(w) == 0 && have == nil
	}
	if len(w) != len(h) {
		return false
	}
	ws, hs := scalarKeys(w), scalarKeys(h)
	if ws != nil && hs != nil {
		sort.Strings(ws)
		sort.Strings(hs)
		for i := range ws {
			if ws[i] != hs[i] {
				return false
			}
		}
		return true
	}
	for i := range w {
		if !sameJSON(w[i], h[i]) {
			return false
		}
	}
	return true
}

// scalarKeys returns a comparable key per element, or nil when an element
// is not a scalar.
func scalarKeys(a []any) []string {
	out := make([]string, len(a))
	for i, v := range a {
		switch x := v.(type) {
		case nil:
			out[i] = "null"
		case string:
			out[i] = "s:" + x
		case bool:
			out[i] = "b:" + strconv.FormatBool(x)
		default:
			n, ok := number(v)
			if !ok {
				return nil
			}
			out[i] = "n:" + strconv.FormatFloat(n, 'g', -1, 64)
		}
	}
	return out
}

func number(v any) (float64, bool) {
	switch x := v.(type) {
	case float64:
		return x, true
	case int:
		return float64(x), true
	case int64:
		return float64(x), true
	case int32:
		return float64(x), true
	case float32:
		return float64(x), true
	case json.Number:
		f, err := x.Float64()
		return f, err == nil
	}
	return 0, false
}
