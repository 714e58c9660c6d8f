package client

import (
	"crypto/sha256"
	"encoding/hex"
	"strings"
)

// RouteService is the /v1 service a go-proxy route resolves to: the route's
// backend is an instance of it, and instances put under it become further
// targets of that route (several replicas behind one host+path).
//
// It reproduces the registry's naming ("sr-<host>_<path, '/' as '_'>",
// or a sanitised prefix, "~" and a hash when that would be ambiguous) so a
// service can find its route's service without asking; a test pins it to
// the registry's own function.
func RouteService(host, path string) string {
	const maxLen = 100
	if name, ok := readableRouteService(host, path, maxLen); ok {
		return name
	}
	sum := sha256.Sum256([]byte(host + "\x00" + path))
	hash := hex.EncodeToString(sum[:])[:12]
	var b strings.Builder
	b.WriteString("sr-")
	for _, r := range host + "_" + strings.TrimPrefix(path, "/") {
		switch {
		case r >= 'a' && r <= 'z', r >= 'A' && r <= 'Z', r >= '0' && r <= '9', r == '.', r == '-':
			b.WriteRune(r)
		case r == '/':
			b.WriteByte('_')
		default:
			b.WriteByte('-')
		}
		if b.Len() >= maxLen-len(hash)-1 {
			break
		}
	}
	return b.String() + "~" + hash
}

func readableRouteService(host, path string, maxLen int) (string, bool) {
	if host == "" || !strings.HasPrefix(path, "/") {
		return "", false
	}
	for _, r := range host {
		if !(r >= 'a' && r <= 'z' || r >= '0' && r <= '9' || r == '.' || r == '-') {
			return "", false
		}
	}
	for _, r := range path {
		if !(r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z' || r >= '0' && r <= '9' || r == '.' || r == '-' || r == '/') {
			return "", false
		}
	}
	name := "sr-" + host + "_" + strings.ReplaceAll(path[1:], "/", "_")
	if len(name) > maxLen {
		return "", false
	}
	return name, true
}
