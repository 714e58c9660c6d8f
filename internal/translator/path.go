package translator

import "strings"

// Kong 3.9 refuses a route path (not a regex "~" path) that differs from
// its normalised form: kong/db/schema/typedefs.lua validates it against
// normalize(path, true) from kong/tools/uri.lua. The functions below apply
// the same rules so adminsvc can refuse such a path with a 400 instead of
// storing a route Kong will never take.

// reservedPathByte reports RFC 3986 reserved characters (plus '%'): their
// percent-encoding changes meaning, so normalisation keeps it (uppercased).
func reservedPathByte(c byte) bool {
	return strings.IndexByte("!*'();:@&=+$,/?%#[]", c) >= 0
}

func unhex(c byte) (byte, bool) {
	switch {
	case c >= '0' && c <= '9':
		return c - '0', true
	case c >= 'a' && c <= 'f':
		return c - 'a' + 10, true
	case c >= 'A' && c <= 'F':
		return c - 'A' + 10, true
	}
	return 0, false
}

// NormalizePath returns Kong's normal form of a path: percent-encoded
// unreserved and "other" bytes decoded, reserved ones uppercased, "." and
// ".." segments resolved and runs of '/' merged.
func NormalizePath(p string) string {
	if p == "" || p == "/" {
		return p
	}
	if strings.IndexByte(p, '%') >= 0 {
		var b strings.Builder
		for i := 0; i < len(p); i++ {
			if p[i] == '%' && i+2 < len(p) {
				hi, ok1 := unhex(p[i+1])
				lo, ok2 := unhex(p[i+2])
				if ok1 && ok2 {
					c := hi<<4 | lo
					if reservedPathByte(c) {
						b.WriteString(strings.ToUpper(p[i : i+3]))
					} else {
						b.WriteByte(c)
					}
					i += 2
					continue
				}
			}
			b.WriteByte(p[i])
		}
		p = b.String()
	}
	if !strings.Contains(p, ".") && !strings.Contains(p, "//") {
		return p
	}
	// Segments kept so far, each with its leading '/' (except possibly the
	// first); ".." drops the last one.
	var out []string
	for len(p) > 0 {
		switch {
		case p == "/.":
			p = "/"
		case p == "/..":
			p = "/"
			if len(out) > 0 {
				out = out[:len(out)-1]
			}
		case p == "." || p == "..":
			p = ""
		case strings.HasPrefix(p, "../"):
			p = p[3:]
		case strings.HasPrefix(p, "./"):
			p = p[2:]
		case strings.HasPrefix(p, "/./"):
			p = p[2:]
		case strings.HasPrefix(p, "/../"):
			p = p[3:]
			if len(out) > 0 {
				out = out[:len(out)-1]
			}
		case strings.HasPrefix(p, "//"):
			p = p[1:]
		default:
			if i := strings.IndexByte(p[1:], '/'); i >= 0 {
				out = append(out, p[:i+1])
				p = p[i+1:]
			} else {
				out = append(out, p)
				p = ""
			}
		}
	}
	return strings.Join(out, "")
}

// CheckPath returns Kong's complaint about a non-normalised route path, or
// "" when Kong accepts its form.
func CheckPath(p string) string {
	// typedefs.lua router_path: match_none "//" before the custom validator.
	if strings.Contains(p, "//") {
		return "must not have empty segments"
	}
	if strings.HasPrefix(p, "~") {
		return ""
	}
	if n := NormalizePath(p); n != p {
		return "non-normalized path, consider use '" + n + "' instead"
	}
	return ""
}
