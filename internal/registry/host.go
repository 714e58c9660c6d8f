package registry

import (
	"errors"
	"fmt"
	"net"
	"strconv"
	"strings"
)

// This file is the one place that decides whether a backend host or an
// instance address can be stored. Everything stored ends up in Kong (an
// upstream's host_header, a target "host:port", the plugin's set_target), so
// the rule is Kong's own (kong/tools/ip.lua hostname_type, normalize_ipv4,
// normalize_ipv6, check_hostname, used by typedefs.host and the targets
// schema in Kong 3.4 and 3.9) plus stricter parts of our own:
//
//   - Kong classifies before it validates: a host made only of digits and
//     dots is an IPv4 address and must be a dotted quad of 0..255, so
//     "2852039166", "999.1.1.1" and "1.2.3" are refused (they are not
//     hostnames either, whatever a resolver would make of them); a host with
//     two colons or more is IPv6 and must be eight hex groups (or "::"
//     shortened), so IPv4-in-IPv6 forms such as "::ffff:1.2.3.4" are refused.
//   - We also refuse what Kong would take but normalize or resolve
//     surprisingly: IPv4 octets with leading zeros ("010" reads as octal to
//     some resolvers), hostname labels over 63 bytes or starting with '-',
//     names over 253 bytes, a trailing dot, zone ids.
//
// Port 0, which Kong's port typedef allows, is refused: nothing listens there.

// ValidateHost says why host cannot be a backend host (an IP address or a
// hostname, without port or brackets), or nil.
func ValidateHost(host string) error {
	if host == "" {
		return errors.New("host required")
	}
	switch kongHostType(host) {
	case "ipv4":
		if !kongIPv4(host) || net.ParseIP(host) == nil {
			return fmt.Errorf("%q is not a valid IPv4 address (digits and dots are read as one)", host)
		}
	case "ipv6":
		if !kongIPv6(host) || net.ParseIP(host) == nil {
			return fmt.Errorf("%q is not a valid IPv6 address", host)
		}
	default:
		if err := checkHostname(host); err != nil {
			return err
		}
	}
	return nil
}

// ValidateAddress checks an instance address "host:port" (IPv6 in brackets)
// and splits it: host as ValidateHost wants it, port 1..65535 written plainly.
func ValidateAddress(addr string) (host string, port int, err error) {
	h, p, err := net.SplitHostPort(addr)
	if err != nil {
		return "", 0, errors.New("expected host:port")
	}
	n, err := strconv.Atoi(p)
	if err != nil || n < 1 || n > 65535 || strconv.Itoa(n) != p {
		return "", 0, fmt.Errorf("port %q is not 1..65535", p)
	}
	if err := ValidateHost(h); err != nil {
		return "", 0, err
	}
	return h, n, nil
}

// SplitAddress is ValidateAddress for callers that only need a yes or no
// (the plugin's snapshot skips an address the store would have refused).
func SplitAddress(addr string) (host string, port int, ok bool) {
	host, port, err := ValidateAddress(addr)
	return host, port, err == nil
}

// kongHostType is Kong's hostname_type: two colons or more make IPv6, only
// digits and dots (colons aside) make IPv4, anything else is a name. The type
// is decided before validation, so a "name" like 1.2.3 is an invalid IPv4.
func kongHostType(h string) string {
	if strings.Count(h, ":") > 1 {
		return "ipv6"
	}
	rest := strings.ReplaceAll(h, ":", "")
	if rest != "" && strings.Trim(rest, "0123456789.") == "" {
		return "ipv4"
	}
	return "name"
}

// kongIPv4 is Kong's normalize_ipv4 without a port: four groups of 1..3
// digits, each at most 255.
func kongIPv4(h string) bool {
	parts := strings.Split(h, ".")
	if len(parts) != 4 {
		return false
	}
	for _, p := range parts {
		if len(p) < 1 || len(p) > 3 || strings.Trim(p, "0123456789") != "" {
			return false
		}
		if n, _ := strconv.Atoi(p); n > 255 {
			return false
		}
	}
	return true
}

// kongIPv6 is Kong's normalize_ipv6 for an address without brackets: pad a
// leading or trailing ':' with a zero group, expand the first "::" to the
// missing zero groups, then require exactly eight groups of 1..4 hex digits.
func kongIPv6(h string) bool {
	if strings.HasPrefix(h, ":") {
		h = "0" + h
	}
	if strings.HasSuffix(h, ":") {
		h += "0"
	}
	if strings.Contains(h, "::") {
		missing := 8 - strings.Count(h, ":")
		if missing < 0 {
			return false
		}
		h = strings.Replace(h, "::", ":"+strings.Repeat("0:", missing), 1)
	}
	groups := strings.Split(h, ":")
	if len(groups) != 8 {
		return false
	}
	for _, g := range groups {
		if len(g) < 1 || len(g) > 4 || strings.Trim(g, "0123456789abcdefABCDEF") != "" {
			return false
		}
	}
	return true
}

// checkHostname is Kong's check_hostname (letters, digits, '-', '.', '_'; no
// label ending in '-'; no empty label) with our stricter RFC 1123 limits:
// labels 1..63 bytes not starting with '-', at most 253 bytes, no trailing dot.
func checkHostname(h string) error {
	if len(h) > 253 {
		return fmt.Errorf("hostname longer than 253 characters")
	}
	for _, label := range strings.Split(h, ".") {
		if !validLabel(label) {
			return fmt.Errorf("%q is not a valid hostname", h)
		}
	}
	return nil
}

// validLabel: 1..63 letters, digits and hyphens, not starting or ending
// with a hyphen. Underscores are allowed too: service-discovery names
// (SRV-style, Docker) use them and Kong's balancer resolves them.
func validLabel(l string) bool {
	if l == "" || len(l) > 63 || l[0] == '-' || l[len(l)-1] == '-' {
		return false
	}
	for i := 0; i < len(l); i++ {
		c := l[i]
		if !(c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '-' || c == '_') {
			return false
		}
	}
	return true
}
