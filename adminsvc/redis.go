package main

import (
	"errors"
	"fmt"
	"net"
	"strconv"
	"strings"
	"time"

	"github.com/redis/go-redis/v9"
)

func splitAddrs(s string) []string {
	var out []string
	for _, a := range strings.Split(s, ",") {
		if a = strings.TrimSpace(a); a != "" {
			out = append(out, a)
		}
	}
	return out
}

// newRedis builds the registry's Redis client: standalone from the URL,
// Sentinel or Cluster when their settings are present. Every call has a
// timeout so a hung Redis turns into 503s, not stuck requests.
func newRedis(s *Settings) (redis.UniversalClient, *redis.Options, error) {
	// Half a Sentinel setting used to fall through silently: a master name
	// without addresses made a client with no sentinel to ask (every call
	// failing at run time), addresses without a name, or Sentinel with
	// Cluster, quietly ran against another Redis than the operator meant.
	switch {
	case s.RedisSentinel != "" && len(splitAddrs(s.RedisSentinels)) == 0:
		return nil, nil, errors.New("redis-sentinel-addrs: required with redis-sentinel-master")
	case s.RedisSentinel == "" && s.RedisSentinels != "":
		return nil, nil, errors.New("redis-sentinel-master: required with redis-sentinel-addrs")
	case s.RedisSentinel != "" && s.RedisCluster != "":
		return nil, nil, errors.New("redis-sentinel-master and redis-cluster-addrs are mutually exclusive")
	}
	// The plugin's record takes each Sentinel half from its own setting or
	// adminsvc's: a name without nodes (or the reverse) is a config Kong
	// refuses at every sync, so refuse it here, at start.
	pluginMaster, pluginNodes := s.PluginRedisSentinel, s.PluginRedisSentinels
	if pluginMaster == "" {
		pluginMaster = s.RedisSentinel
	}
	if pluginNodes == "" {
		pluginNodes = s.RedisSentinels
	}
	switch {
	case pluginMaster != "" && len(splitAddrs(pluginNodes)) == 0:
		return nil, nil, errors.New("plugin-redis-sentinel-nodes: required with plugin-redis-sentinel-master")
	case pluginMaster == "" && pluginNodes != "":
		return nil, nil, errors.New("plugin-redis-sentinel-master: required with plugin-redis-sentinel-nodes")
	}
	opt, err := redis.ParseURL(s.RedisURL)
	if err != nil {
		return nil, nil, fmt.Errorf("redis url: %w", err)
	}
	opt.DialTimeout, opt.ReadTimeout, opt.WriteTimeout = 2*time.Second, 2*time.Second, 2*time.Second
	switch {
	case s.RedisCluster != "":
		return redis.NewClusterClient(&redis.ClusterOptions{
			Addrs: splitAddrs(s.RedisCluster), Username: opt.Username, Password: opt.Password, TLSConfig: opt.TLSConfig,
			DialTimeout: opt.DialTimeout, ReadTimeout: opt.ReadTimeout, WriteTimeout: opt.WriteTimeout,
			// A dead primary answers with connection errors, not MOVED, so
			// only a periodic reload finds the promoted replica: 1 s bounds a
			// failover's write outage at the cost of one CLUSTER SLOTS a second.
			ClusterStateReloadInterval: time.Second,
		}), opt, nil
	case s.RedisSentinel != "":
		return redis.NewFailoverClient(&redis.FailoverOptions{
			MasterName: s.RedisSentinel, SentinelAddrs: splitAddrs(s.RedisSentinels),
			Username: opt.Username, Password: opt.Password, DB: opt.DB, TLSConfig: opt.TLSConfig,
			DialTimeout: opt.DialTimeout, ReadTimeout: opt.ReadTimeout, WriteTimeout: opt.WriteTimeout,
		}), opt, nil
	}
	return redis.NewClient(opt), opt, nil
}

// pluginRedis is the service-registry plugin's config.redis record: the
// plugin settings when given, else what adminsvc itself uses.
func pluginRedis(s *Settings, opt *redis.Options) map[string]any {
	m := map[string]any{}
	host, port, err := net.SplitHostPort(opt.Addr)
	if err == nil {
		m["host"] = host
		if p, err := strconv.Atoi(port); err == nil {
			m["port"] = p
		}
	}
	if opt.Username != "" {
		m["username"] = opt.Username
	}
	if opt.Password != "" {
		m["password"] = opt.Password
	}
	if opt.DB != 0 {
		m["database"] = opt.DB
	}
	if opt.TLSConfig != nil {
		m["ssl"] = true
	}
	if s.RedisSentinel != "" {
		m["sentinel_master"] = s.RedisSentinel
		m["sentinel_nodes"] = nodes(s.RedisSentinels, "host")
	}
	if s.RedisCluster != "" {
		m["cluster_nodes"] = nodes(s.RedisCluster, "ip")
	}
	if s.PluginRedisHost != "" {
		m["host"] = s.PluginRedisHost
	}
	if s.PluginRedisPort != 0 {
		m["port"] = s.PluginRedisPort
	}
	if s.PluginRedisPassword != "" {
		m["password"] = s.PluginRedisPassword
	}
	if s.PluginRedisDatabase >= 0 {
		m["database"] = s.PluginRedisDatabase
	}
	if s.PluginRedisSSL {
		m["ssl"] = true
	}
	if m["ssl"] == true {
		// TLS without verification is no protection against a man in the
		// middle: verify unless the operator opts out explicitly.
		m["ssl_verify"] = s.PluginRedisSSLVerify
		// adminsvc verifies the certificate against the URL's host; when the
		// plugin is sent elsewhere (another address for the same server),
		// it must check the same name, not the address it dials.
		if opt.TLSConfig != nil && opt.TLSConfig.ServerName != "" && s.PluginRedisHost != "" &&
			s.PluginRedisHost != opt.TLSConfig.ServerName {
			m["server_name"] = opt.TLSConfig.ServerName
		}
	}
	if s.PluginRedisServerName != "" {
		m["server_name"] = s.PluginRedisServerName
	}
	if s.PluginRedisTimeoutMS > 0 {
		m["timeout_ms"] = s.PluginRedisTimeoutMS
	}
	if s.PluginRedisSentinel != "" {
		m["sentinel_master"] = s.PluginRedisSentinel
	}
	if s.PluginRedisSentinels != "" {
		m["sentinel_nodes"] = nodes(s.PluginRedisSentinels, "host")
	}
	if s.PluginRedisClusterNode != "" {
		m["cluster_nodes"] = nodes(s.PluginRedisClusterNode, "ip")
	}
	if s.RedisPrefix != "" && s.RedisPrefix != "sr" {
		m["key_prefix"] = s.RedisPrefix
	}
	if v, ok := m["database"].(int); ok && v == 0 {
		delete(m, "database")
	}
	return m
}

// nodes turns "h1:p1,h2:p2" into the plugin's [{<hostKey>, port}] records.
func nodes(list, hostKey string) []any {
	var out []any
	for _, a := range splitAddrs(list) {
		h, p, err := net.SplitHostPort(a)
		if err != nil {
			out = append(out, map[string]any{hostKey: a})
			continue
		}
		n, _ := strconv.Atoi(p)
		out = append(out, map[string]any{hostKey: h, "port": n})
	}
	return out
}
