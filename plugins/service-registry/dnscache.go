package main

import (
	"context"
	"net"
	"sync"
	"time"
)

// dnsCache remembers what registry host names resolve to, for breakerAddr
// (outcome.go): Kong's tries[] name the IP it dialled, the registry the
// host name an instance was registered under.
type dnsCache struct {
	mu           sync.Mutex
	m            map[string]dnsEntry
	ttl, timeout time.Duration
}

type dnsEntry struct {
	ips     []string
	expires time.Time
}

// lookup resolves host, at most once per ttl (a failure is cached too, so
// a broken resolver costs the log phase one timeout per ttl, not per
// request). It runs in the log phase, after the response.
func (d *dnsCache) lookup(host string) []string {
	now := time.Now()
	d.mu.Lock()
	e, ok := d.m[host]
	d.mu.Unlock()
	if ok && now.Before(e.expires) {
		return e.ips
	}
	ctx, cancel := context.WithTimeout(context.Background(), d.timeout)
	defer cancel()
	ips, err := net.DefaultResolver.LookupHost(ctx, host)
	if err != nil {
		logThrottled("dns:"+host, "service-registry: cannot resolve instance host for the breaker", "host", host, "error", err)
	}
	d.mu.Lock()
	if len(d.m) > 4096 { // bounded: forget everything rather than grow
		d.m = map[string]dnsEntry{}
	}
	d.m[host] = dnsEntry{ips: ips, expires: now.Add(d.ttl)}
	d.mu.Unlock()
	return ips
}
