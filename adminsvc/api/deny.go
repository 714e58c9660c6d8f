package api

import (
	"fmt"
	"net"
	"net/netip"
	"net/url"
	"strconv"
	"strings"
)

// DefaultDenyBackends are the backends refused unless the operator says
// otherwise: link-local (cloud metadata at 169.254.169.254, IPv6 fe80::)
// and the unspecified addresses, which reach this host like loopback but
// are never what a registration means. Loopback stays allowed (local
// development); list 127.0.0.0/8 or ::1 to refuse it.
const DefaultDenyBackends = "169.254.0.0/16,fe80::/10,0.0.0.0/32,::/128"

// DenyList refuses backends and instance addresses inside the gateway's own
// network. Entries are CIDRs or IPs (any port) and host:port (that port
// only; a hostname entry matches that name). Hostnames are not resolved: a
// name is refused only by a host:port entry naming it, never by a CIDR (a
// lookup at registration proves nothing about later ones).
type DenyList struct {
	prefixes []netip.Prefix
	hostPort map[string]string // "host:port" (lowercase, IPs unmapped) -> the entry
	entries  []string
}

// ParseDenyList reads a comma-separated list; kongAdmin, when set, is the
// Kong Admin API URL, always denied (a route to it would publish Kong's
// Admin API through Kong).
func ParseDenyList(list, kongAdmin string) (*DenyList, error) {
	d := &DenyList{hostPort: map[string]string{}}
	for _, e := range splitList(list) {
		if err := d.add(e, e); err != nil {
			return nil, fmt.Errorf("deny-backends: %q: %w", e, err)
		}
	}
	if kongAdmin != "" {
		u, err := url.Parse(kongAdmin)
		if err != nil || u.Hostname() == "" {
			return nil, fmt.Errorf("kong-admin-url %q: not a url with a host", kongAdmin)
		}
		port := u.Port()
		if port == "" {
			port = defaultPort(u.Scheme)
		}
		hosts := []string{u.Hostname()}
		// The same Admin API under its other loopback spellings.
		if ip, err := netip.ParseAddr(u.Hostname()); (err == nil && ip.IsLoopback()) || strings.EqualFold(u.Hostname(), "localhost") {
			hosts = []string{"127.0.0.1", "::1", "localhost"}
		}
		for _, h := range hosts {
			_ = d.add(net.JoinHostPort(h, port), "the kong admin api")
		}
	}
	return d, nil
}

func (d *DenyList) add(e, why string) error {
	d.entries = append(d.entries, e)
	if p, err := netip.ParsePrefix(e); err == nil {
		d.prefixes = append(d.prefixes, p.Masked())
		return nil
	}
	if ip, err := netip.ParseAddr(e); err == nil {
		d.prefixes = append(d.prefixes, netip.PrefixFrom(ip.Unmap(), ip.Unmap().BitLen()))
		return nil
	}
	h, p, err := net.SplitHostPort(e)
	if err != nil {
		return fmt.Errorf("expected a cidr, an ip or host:port")
	}
	if n, err := strconv.Atoi(p); err != nil || n < 1 || n > 65535 {
		return fmt.Errorf("port %q is not 1..65535", p)
	}
	d.hostPort[hostPortKey(h, p)] = why
	return nil
}

func hostPortKey(host, port string) string {
	if ip, err := netip.ParseAddr(host); err == nil {
		host = ip.Unmap().String()
	}
	return strings.ToLower(host) + "|" + port
}

// Check says why host:port may not be a backend, or "" when it may.
func (d *DenyList) Check(host, port string) string {
	if d == nil {
		return ""
	}
	if why, ok := d.hostPort[hostPortKey(host, port)]; ok {
		return why
	}
	if ip, err := netip.ParseAddr(host); err == nil {
		ip = ip.Unmap()
		for _, p := range d.prefixes {
			if p.Contains(ip) {
				return p.String()
			}
		}
	}
	return ""
}

func defaultPort(scheme string) string {
	switch scheme {
	case "https", "wss":
		return "443"
	}
	return "80"
}

// denyBackend is the 400 for a backend URL the deny-list refuses, or nil.
func (srv *Server) denyBackend(backend string) error {
	u, err := url.Parse(backend)
	if err != nil {
		return nil // validBackend answered already
	}
	port := u.Port()
	if port == "" {
		port = defaultPort(u.Scheme)
	}
	if why := srv.cfg.Deny.Check(u.Hostname(), port); why != "" {
		return badRequest("backend: %s is not allowed (denied by %s; see SR_DENY_BACKENDS)", net.JoinHostPort(u.Hostname(), port), why)
	}
	return nil
}

// denyAddress is the 400 for an instance address the deny-list refuses.
func (srv *Server) denyAddress(addr string) error {
	h, p, err := net.SplitHostPort(addr)
	if err != nil {
		return nil
	}
	if why := srv.cfg.Deny.Check(h, p); why != "" {
		return badRequest("address: %s is not allowed (denied by %s; see SR_DENY_BACKENDS)", addr, why)
	}
	return nil
}
