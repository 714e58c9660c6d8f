package api

import (
	"net"
	"net/url"
	"regexp"
	"strconv"
	"strings"
	"time"

	"github.com/kong-service-registry/service-registry/internal/registry"
	"github.com/kong-service-registry/service-registry/internal/translator"
)

const storeTimeout = 3 * time.Second

var (
	// Kong's route path characters (typedefs.lua validate_path).
	pathRe = regexp.MustCompile(`^/[A-Za-z0-9._~/%:@!$&'()*+,;=-]*$`)
	pctRe  = regexp.MustCompile(`%[0-9A-Fa-f]{2}`)
)

// validHost accepts a route host: a hostname by registry.ValidateHost
// (Kong's rules, the one hostname check), optionally "*." + hostname
// (Kong's leftmost wildcard), lowercase already. Stricter than a backend
// host in two ways: not an IP address (Kong refuses those in route hosts)
// and no '_' (the registry service name joins host and path with '_', so
// an underscore in the host could make two routes share one name).
func validHost(h string) error {
	if h == "" {
		return badRequest("host: required")
	}
	name := strings.TrimPrefix(h, "*.")
	if net.ParseIP(name) != nil {
		return badRequest("host: must be a hostname, not an ip address")
	}
	if strings.ContainsAny(name, "*_") || strings.Trim(name, "0123456789.") == "" || registry.ValidateHost(name) != nil {
		return badRequest("host: invalid hostname %q", h)
	}
	return nil
}

func validPath(p string) error {
	if !strings.HasPrefix(p, "/") {
		return badRequest("path: must start with /")
	}
	if len(p) > 1024 {
		return badRequest("path: longer than 1024 characters")
	}
	if !pathRe.MatchString(p) {
		return badRequest("path: invalid characters in %q", p)
	}
	if strings.Contains(pctRe.ReplaceAllString(p, ""), "%") {
		return badRequest("path: invalid percent-encoding in %q", p)
	}
	// Kong refuses a path that is not in its normal form; storing one would
	// leave a route Kong never takes.
	if msg := translator.CheckPath(p); msg != "" {
		return badRequest("path: %s", msg)
	}
	return nil
}

func validBackend(b string) error {
	u, err := url.Parse(b)
	if err != nil || u.Host == "" || !u.IsAbs() {
		return badRequest("backend: must be an absolute http, https, ws or wss url")
	}
	switch u.Scheme {
	case "http", "https", "ws", "wss":
	default:
		return badRequest("backend: scheme %q not supported (http, https, ws, wss)", u.Scheme)
	}
	if u.User != nil {
		return badRequest("backend: credentials in the url are not supported")
	}
	if u.RawQuery != "" || u.Fragment != "" {
		return badRequest("backend: query and fragment are not supported")
	}
	if p := u.Port(); p != "" {
		// The store's rule (registry.ValidateAddress): a plain 1..65535,
		// no sign or leading zero, so "01" is not accepted here and then
		// refused when the route's instance is written.
		if n, err := strconv.Atoi(p); err != nil || n < 1 || n > 65535 || strconv.Itoa(n) != p {
			return badRequest("backend: invalid port %q", p)
		}
	}
	// Kong's host rules, shared with the store and the translator.
	if err := registry.ValidateHost(u.Hostname()); err != nil {
		return badRequest("backend: invalid host: %v", err)
	}
	return nil
}

func validAddress(a string) error {
	if _, _, err := registry.ValidateAddress(a); err != nil {
		return badRequest("address: %v", err)
	}
	return nil
}
