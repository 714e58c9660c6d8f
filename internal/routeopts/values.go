package routeopts

import (
	"encoding/json"
	"maps"
	"slices"
	"strings"
	"time"
)

func duration(field string, v any) (time.Duration, error) {
	s, ok := v.(string)
	if !ok {
		return 0, fieldErr(field, "expected a duration string like \"30s\"")
	}
	d, err := time.ParseDuration(s)
	if err != nil {
		return 0, fieldErr(field, "invalid duration %q", s)
	}
	if d < 0 {
		return 0, fieldErr(field, "must not be negative")
	}
	return d, nil
}

func boolean(field string, v any) (bool, error) {
	b, ok := v.(bool)
	if !ok {
		return false, fieldErr(field, "expected a boolean")
	}
	return b, nil
}

func nonNegInt(field string, v any, max int64) (int, error) {
	n, ok := v.(json.Number)
	if !ok {
		return 0, fieldErr(field, "expected an integer")
	}
	i, err := n.Int64()
	if err != nil {
		return 0, fieldErr(field, "expected an integer")
	}
	if i < 0 {
		return 0, fieldErr(field, "must not be negative")
	}
	if i > max {
		return 0, fieldErr(field, "must be at most %d", max)
	}
	return int(i), nil
}

func object(field string, v any) (map[string]any, error) {
	m, ok := v.(map[string]any)
	if !ok {
		return nil, fieldErr(field, "expected an object")
	}
	return m, nil
}

func headers(field string, v any) (map[string]string, error) {
	m, err := object(field, v)
	if err != nil {
		return nil, err
	}
	out := make(map[string]string, len(m))
	// Sorted, so a body with several bad headers always names the same one.
	for _, name := range slices.Sorted(maps.Keys(m)) {
		hv := m[name]
		f := field + "." + name
		if !isToken(name) {
			return nil, fieldErr(field, "invalid header name %q", name)
		}
		s, ok := hv.(string)
		if !ok {
			return nil, fieldErr(f, "expected a string")
		}
		if strings.ContainsAny(s, "\r\n\x00") {
			return nil, fieldErr(f, "header value must not contain CR, LF or NUL")
		}
		out[name] = s
	}
	return out, nil
}

// isToken reports whether s is an RFC 9110 token (a valid header name).
func isToken(s string) bool {
	if s == "" {
		return false
	}
	for i := 0; i < len(s); i++ {
		c := s[i]
		switch {
		case c >= 'a' && c <= 'z', c >= 'A' && c <= 'Z', c >= '0' && c <= '9':
		case strings.IndexByte("!#$%&'*+-.^_`|~", c) >= 0:
		default:
			return false
		}
	}
	return true
}
