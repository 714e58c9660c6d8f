// Package redisconn builds the go-redis client of one Redis deployment
// (standalone, Sentinel or Cluster, optionally over TLS). It owns the rules
// the plugin and adminsvc share: which settings select which mode, which
// half-given settings are refused, which certificate name TLS verifies, and
// the Cluster reload interval that lets a client find a promoted replica.
// Callers keep their own timeouts and retry policy (the plugin's hot path
// wants one attempt; adminsvc's API can retry) and their own setting names
// in error messages.
package redisconn

import (
	"crypto/tls"
	"errors"
	"fmt"
	"net"
	"strings"
	"time"

	"github.com/redis/go-redis/v9"
)

// Mode is how a deployment is reached.
type Mode string

const (
	Standalone Mode = "standalone"
	Sentinel   Mode = "sentinel"
	Cluster    Mode = "cluster"
)

// Config describes one deployment. ClusterAddrs select Cluster mode,
// MasterName (with SentinelAddrs) Sentinel mode, else Addr is one server.
type Config struct {
	Addr          string // standalone host:port; also the TLS name when no ServerName
	MasterName    string
	SentinelAddrs []string
	ClusterAddrs  []string

	Username, Password string
	DB                 int

	TLS bool
	// ServerName is the certificate name to verify. Empty: Addr's host, or
	// in Sentinel mode the host each connection dials (Addr is unused there,
	// so its default would be checked against every sentinel's and
	// primary's certificate).
	ServerName string
	// SkipVerify turns certificate verification off (an operator's explicit
	// choice, as Kong's ssl_verify=false).
	SkipVerify bool

	// Timeout bounds each dial, read and write.
	Timeout time.Duration
	// MaxRetries as go-redis: 0 its default (3), -1 none. None also means
	// one dial attempt per connection (go-redis otherwise dials 5 times,
	// 100 ms apart: a refused Redis cost a request ~0.5 s, not a timeout).
	MaxRetries int
	// ContextTimeout lets a caller's deadline bound a call on its own
	// goroutine (go-redis ContextTimeoutEnabled).
	ContextTimeout bool
}

// Settings refused by Check. Callers name their own settings in messages.
var (
	ErrMasterWithoutSentinels = errors.New("redisconn: sentinel master name without sentinel addresses")
	ErrSentinelsWithoutMaster = errors.New("redisconn: sentinel addresses without a master name")
	ErrSentinelAndCluster     = errors.New("redisconn: sentinel and cluster are mutually exclusive")
)

// clusterReload: a dead Cluster primary answers with connection errors, not
// MOVED, so only a periodic reload finds the promoted replica (go-redis'
// default is 60 s); 1 s bounds a failover's outage at one CLUSTER SLOTS a second.
const clusterReload = time.Second

// Mode reports the mode the settings select.
func (c Config) Mode() Mode {
	switch {
	case len(c.ClusterAddrs) > 0:
		return Cluster
	case c.MasterName != "":
		return Sentinel
	}
	return Standalone
}

// Check refuses half a Sentinel setting and Sentinel with Cluster: either
// would quietly run against another Redis (or none) than the operator meant.
func (c Config) Check() error {
	switch {
	case c.MasterName != "" && len(c.SentinelAddrs) == 0:
		return ErrMasterWithoutSentinels
	case c.MasterName == "" && len(c.SentinelAddrs) > 0:
		return ErrSentinelsWithoutMaster
	case c.MasterName != "" && len(c.ClusterAddrs) > 0:
		return ErrSentinelAndCluster
	}
	return nil
}

// TLSConfig is the TLS configuration of every connection, nil without TLS.
func (c Config) TLSConfig() *tls.Config {
	if !c.TLS {
		return nil
	}
	name := c.ServerName
	if name == "" && c.Mode() != Sentinel {
		name = hostOf(c.Addr)
	}
	return &tls.Config{ServerName: name, InsecureSkipVerify: c.SkipVerify, MinVersion: tls.VersionTLS12} //nolint:gosec // SkipVerify is the operator's explicit choice
}

// New builds the client; it does not talk to Redis.
func New(c Config) (redis.UniversalClient, error) {
	if err := c.Check(); err != nil {
		return nil, err
	}
	t := c.TLSConfig()
	dials := 0 // go-redis' default (5)
	if c.MaxRetries < 0 {
		dials = 1
	}
	switch c.Mode() {
	case Cluster:
		return redis.NewClusterClient(&redis.ClusterOptions{
			Addrs: c.ClusterAddrs, Username: c.Username, Password: c.Password, TLSConfig: t,
			DialTimeout: c.Timeout, ReadTimeout: c.Timeout, WriteTimeout: c.Timeout, MaxRetries: c.MaxRetries,
			DialerRetries: dials, ContextTimeoutEnabled: c.ContextTimeout, ClusterStateReloadInterval: clusterReload,
		}), nil
	case Sentinel:
		return redis.NewFailoverClient(&redis.FailoverOptions{
			MasterName: c.MasterName, SentinelAddrs: c.SentinelAddrs, Username: c.Username, Password: c.Password,
			DB: c.DB, TLSConfig: t,
			DialTimeout: c.Timeout, ReadTimeout: c.Timeout, WriteTimeout: c.Timeout, MaxRetries: c.MaxRetries,
			DialerRetries: dials, ContextTimeoutEnabled: c.ContextTimeout,
		}), nil
	}
	return redis.NewClient(&redis.Options{
		Addr: c.Addr, Username: c.Username, Password: c.Password, DB: c.DB, TLSConfig: t,
		DialTimeout: c.Timeout, ReadTimeout: c.Timeout, WriteTimeout: c.Timeout, MaxRetries: c.MaxRetries,
		DialerRetries: dials, ContextTimeoutEnabled: c.ContextTimeout,
	}), nil
}

// FromURL reads a redis:// or rediss:// URL (go-redis' syntax: user,
// password, database, TLS and its skip_verify option) into a standalone
// Config; the caller adds Sentinel or Cluster addresses.
func FromURL(url string) (Config, error) {
	o, err := redis.ParseURL(url)
	if err != nil {
		return Config{}, fmt.Errorf("redis url: %w", err)
	}
	c := Config{Addr: o.Addr, Username: o.Username, Password: o.Password, DB: o.DB}
	if o.TLSConfig != nil {
		c.TLS, c.SkipVerify = true, o.TLSConfig.InsecureSkipVerify
		// go-redis fills in the URL's host; only a different name is the
		// operator's, so that the Sentinel rule of TLSConfig applies.
		if n := o.TLSConfig.ServerName; n != hostOf(o.Addr) {
			c.ServerName = n
		}
	}
	return c, nil
}

func hostOf(addr string) string {
	if h, _, err := net.SplitHostPort(addr); err == nil {
		return h
	}
	return addr
}

// SplitAddrs turns "h1:p1, h2:p2" into its non-empty addresses.
func SplitAddrs(s string) []string {
	var out []string
	for _, a := range strings.Split(s, ",") {
		if a = strings.TrimSpace(a); a != "" {
			out = append(out, a)
		}
	}
	return out
}
