package harness

import (
	"fmt"
	"net/http"
	"regexp"
	"strconv"
	"strings"
)

// Kong's kong/tools/uri.lua (3.4.2 and 3.9.3): the path its router matches
// and kong.request.get_path returns (normalize(raw path, true)), and the
// escaping of the upstream URI (escape), which the router's path and
// kong.service.request.set_path both get.

// reservedChars stay percent-encoded (uppercased) when normalizing.
const reservedChars = "!*'();:@&=+$,/?%#[]"

var pctTriplet = regexp.MustCompile(`%[0-9A-Fa-f]{2}`)

// kongNormalize is normalize(uri, true): %XX of unreserved and "other"
// bytes decoded, reserved ones uppercased; dot segments removed; slashes
// merged.
func kongNormalize(uri string) string {
	if uri == "" || uri == "/" {
		return uri
	}
	if strings.Contains(uri, "%") {
		uri = pctTriplet.ReplaceAllStringFunc(uri, func(m string) string {
			n, _ := strconv.ParseUint(m[1:], 16, 8)
			if strings.IndexByte(reservedChars, byte(n)) >= 0 {
				return strings.ToUpper(m)
			}
			return string([]byte{byte(n)})
		})
	}
	if !strings.Contains(uri, ".") && !strings.Contains(uri, "//") {
		return uri
	}
	var out []string
	pop := func() {
		if len(out) > 0 {
			out = out[:len(out)-1]
		}
	}
	for uri != "" {
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
		case strings.HasPrefix(uri, "//"):
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

// kongEscape is escape(uri): every byte outside
// [!#$&'()*+,/:;=?@[\]A-Za-z0-9-_.~%] becomes %XX.
func kongEscape(uri string) string {
	var b strings.Builder
	for i := 0; i < len(uri); i++ {
		c := uri[i]
		if c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || strings.IndexByte("!#$&'()*+,/:;=?@[]-_.~%", c) >= 0 {
			b.WriteByte(c)
			continue
		}
		fmt.Fprintf(&b, "%%%02X", c)
	}
	return b.String()
}

// rawPath is kong.request.get_raw_path: the request target as the client
// sent it, without the query.
func rawPath(r *http.Request) string {
	p := r.RequestURI
	if i := strings.IndexByte(p, '?'); i >= 0 {
		p = p[:i]
	}
	if !strings.HasPrefix(p, "/") {
		// Absolute form (http://host/path) or a request built in a
		// test: the path Go parsed, re-escaped.
		p = r.URL.EscapedPath()
	}
	return p
}

// path is kong.request.get_path for this request.
func (rc *reqCtx) path() string { return kongNormalize(rawPath(rc.req)) }
