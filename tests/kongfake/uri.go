package kongfake

import (
	"regexp"
	"strings"
)

// Route path rules, the fake's own reading of Kong's source (identical in
// 3.4.2 and 3.9.3): kong/db/schema/typedefs.lua router_path and
// validate_path_with_regexes, kong/tools/uri.lua normalize. Deliberately
// independent of the product's translator, so the fake cannot agree with
// the product by construction; asreal_test.go's path cases were recorded
// from the real Kongs.

var (
	rfc3986PathRe = regexp.MustCompile(`^/[A-Za-z0-9.\-_~/%:@!$&'()*+,;=]*$`)
	hexPairRe     = regexp.MustCompile(`(?i)%([0-9a-f]{2})`)
	hexPairAnyRe  = regexp.MustCompile(`%[0-9A-Fa-f]{2}`)
	badPercentRe  = regexp.MustCompile(`%.?.?`)
)

// uriReserved are the bytes normalize keeps percent-encoded (uppercased).
const uriReserved = "!*'();:@&=+$,/?%#[]"

// validateRouterPath applies router_path's validators in Kong's order:
// match_any, match_none, then the custom validator.
func validateRouterPath(s string) string {
	if !strings.HasPrefix(s, "/") && !strings.HasPrefix(s, "~/") {
		return "should start with: / (fixed path) or ~/ (regex path)"
	}
	if strings.Contains(s, "//") {
		return "must not have empty segments"
	}
	// validate_path_with_regexes keeps only validate_path's percent error:
	// a path with characters outside RFC 3986 (or a regex path, which does
	// not start with '/') never reaches the percent check.
	if rfc3986PathRe.MatchString(s) {
		raw := hexPairAnyRe.ReplaceAllString(s, "___")
		if i := strings.IndexByte(raw, '%'); i >= 0 {
			return "invalid url-encoded value: '" + badPercentRe.FindString(raw[i:]) + "'"
		}
	}
	if strings.HasPrefix(s, "~") {
		return ""
	}
	if n := uriNormalize(s, true); n != s {
		return "non-normalized path, consider use '" + n + "' instead"
	}
	return ""
}

// uriNormalize is kong/tools/uri.lua normalize(uri, merge_slashes).
func uriNormalize(uri string, mergeSlashes bool) string {
	if uri == "" || uri == "/" {
		return uri
	}
	if strings.Contains(uri, "%") {
		uri = hexPairRe.ReplaceAllStringFunc(uri, func(m string) string {
			var c byte
			for _, h := range []byte(strings.ToLower(m[1:])) {
				c <<= 4
				if h >= 'a' {
					c |= h - 'a' + 10
				} else {
					c |= h - '0'
				}
			}
			if strings.IndexByte(uriReserved, c) < 0 {
				return string([]byte{c})
			}
			return strings.ToUpper(m)
		})
	}
	if !strings.Contains(uri, ".") && (!mergeSlashes || !strings.Contains(uri, "//")) {
		return uri
	}
	var out []string
	pop := func() {
		if len(out) > 0 {
			out = out[:len(out)-1]
		}
	}
	for len(uri) > 0 {
		switch {
		case uri == "/.":
			uri = "/"
		case uri == "/..":
			uri = "/"
			pop()
		case uri == "." || uri == "..":
			uri = ""
		case strings.HasPrefix(uri, "../"):
			uri = uri[3:]
		case strings.HasPrefix(uri, "./"):
			uri = uri[2:]
		case strings.HasPrefix(uri, "/./"):
			uri = uri[2:]
		case strings.HasPrefix(uri, "/../"):
			uri = uri[3:]
			pop()
		case mergeSlashes && strings.HasPrefix(uri, "//"):
			uri = uri[1:]
		default:
			if i := strings.IndexByte(uri[1:], '/'); i >= 0 {
				out = append(out, uri[:i+1])
				uri = uri[i+1:]
			} else {
				out = append(out, uri)
				uri = ""
			}
		}
	}
	return strings.Join(out, "")
}
