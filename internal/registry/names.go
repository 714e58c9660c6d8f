package registry

import (
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"strings"
)

// maxNameLen keeps derived names comfortably short for Kong, logs and keys.
const maxNameLen = 100

// ServiceName derives the registry (and Kong) service name of a go-proxy
// route: "sr-<host>_<path without leading slash, '/' as '_'>".
//
// The readable form is used only when it can be reversed unambiguously: a
// lowercase host made of [a-z0-9.-], a path starting with "/" made of
// [A-Za-z0-9.-/], and a result no longer than maxNameLen. Anything else
// (wildcard hosts, '_' or '~' or other characters, long names) gets a
// sanitised prefix plus "~" and a hash of host+path, so two different routes
// never share a name: readable names never contain '~', hashed ones always do.
func ServiceName(host, path string) string {
	if name, ok := readableName(host, path); ok {
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
		if b.Len() >= maxNameLen-len(hash)-1 {
			break
		}
	}
	return b.String() + "~" + hash
}

func readableName(host, path string) (string, bool) {
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
	if len(name) > maxNameLen {
		return "", false
	}
	return name, true
}

// CheckServiceName says why a service name cannot be stored, or nil. Names
// must be non-empty, free of the braces that would break the Redis Cluster
// hash tag, and must not start with '_': that prefix is reserved for the
// registry's own keys (the global index lives under the tag {_index}, so a
// service named "_index" would share its keys). Derived names start "sr-".
func CheckServiceName(name string) error {
	switch {
	case name == "":
		return errors.New("required")
	case strings.ContainsAny(name, "{}"):
		return errors.New("must not contain braces")
	case strings.HasPrefix(name, "_"):
		return errors.New("must not start with '_' (reserved)")
	}
	return nil
}

func validName(name string) bool { return CheckServiceName(name) == nil }
