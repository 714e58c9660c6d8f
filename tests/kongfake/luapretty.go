package kongfake

import (
	"fmt"
	"sort"
	"strconv"
	"strings"
)

// violationParts is kong/db/errors.lua's schema_violation message: one part
// per "@entity" error, then per field in sorted order; a field whose errors
// are a table (a record's fields, an array's elements) gives one part per
// sub-key, "field.key: value", with arrays counted from 1, holes skipped,
// and table values written by Penlight's pretty.write.
func violationParts(fields map[string]any) []string {
	var parts []string
	if ent, ok := fields["@entity"].([]any); ok {
		for _, e := range ent {
			parts = append(parts, fmt.Sprint(e))
		}
	}
	keys := make([]string, 0, len(fields))
	for k := range fields {
		if k != "@entity" {
			keys = append(keys, k)
		}
	}
	sort.Strings(keys)
	for _, k := range keys {
		switch v := fields[k].(type) {
		case map[string]any:
			sub := make([]string, 0, len(v))
			for sk := range v {
				sub = append(sub, sk)
			}
			sort.Strings(sub)
			for _, sk := range sub {
				parts = append(parts, fmt.Sprintf("%s.%s: %s", k, sk, luaValue(v[sk])))
			}
		case []any:
			for i, e := range v {
				if e != nil {
					parts = append(parts, fmt.Sprintf("%s.%d: %s", k, i+1, luaValue(e)))
				}
			}
		default:
			parts = append(parts, fmt.Sprintf("%s: %v", k, v))
		}
	}
	return parts
}

// luaValue writes a field error: tables through prettyWrite, the rest as is.
func luaValue(v any) string {
	switch v.(type) {
	case map[string]any, []any:
		return prettyWrite(v, "")
	}
	return fmt.Sprint(v)
}

// prettyWrite is Penlight's pretty.write(t) with its default two-space
// indent, as Kong 3.4.2 and 3.9.3 print nested errors: keys sorted, the
// array part plain until the first hole, then "[i] = v"; items joined by
// ",\n".
func prettyWrite(v any, indent string) string {
	inner := indent + "  "
	var items []string
	switch x := v.(type) {
	case map[string]any:
		keys := make([]string, 0, len(x))
		for k := range x {
			keys = append(keys, k)
		}
		sort.Strings(keys)
		for _, k := range keys {
			items = append(items, inner+luaKey(k)+" = "+prettyWrite(x[k], inner))
		}
	case []any:
		seq := true
		for i, e := range x {
			if e == nil {
				seq = false
				continue
			}
			if seq {
				items = append(items, inner+prettyWrite(e, inner))
			} else {
				items = append(items, inner+"["+strconv.Itoa(i+1)+"] = "+prettyWrite(e, inner))
			}
		}
	case string:
		return strconv.Quote(x)
	case nil:
		return "nil"
	default:
		return fmt.Sprint(x)
	}
	if len(items) == 0 {
		return "{}"
	}
	return "{\n" + strings.Join(items, ",\n") + "\n" + indent + "}"
}

func luaKey(k string) string {
	for i, c := range k {
		if !(c == '_' || c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || i > 0 && c >= '0' && c <= '9') {
			return "[" + strconv.Quote(k) + "]"
		}
	}
	return k
}

// luaArrays drops the trailing nils of every error array in v, as a Lua
// table (whose length ends at the last element) is encoded.
func luaArrays(v any) any {
	switch x := v.(type) {
	case map[string]any:
		for k, e := range x {
			x[k] = luaArrays(e)
		}
	case []any:
		for len(x) > 0 && x[len(x)-1] == nil {
			x = x[:len(x)-1]
		}
		for i, e := range x {
			x[i] = luaArrays(e)
		}
		return x
	}
	return v
}
