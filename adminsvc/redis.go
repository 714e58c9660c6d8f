package main

import (
	"errors"
	"fmt"
	"net"
	"strconv"
	"strings"
	"time"

	"github.com/kong-service-registry/service-registry/internal/redisconn"
	"github.com/redis/go-redis/v9"
)

func splitAddrs(s string) []string { return redisconn.SplitAddrs(s) }

// newRedis builds the registry's Redis client (redisconn: standalone from
// the URL, Sentinel or Cluster when their settings are present). Every call
// has a timeout so a hung Redis turns into 503s, not stuck requests. The
// options are the URL's, for the plugin's record (pluginRedis).
func newRedis(s *Settings) (redis.UniversalClient, *redis.Options, error) {
	cfg, err := redisconn.FromURL(s.RedisURL)
	if err != nil {
		return nil, nil, err
	}
	cfg.MasterName, cfg.SentinelAddrs = s.RedisSentinel, splitAddrs(s.RedisSentinels)
	cfg.ClusterAddrs = splitAddrs(s.RedisCluster)
	cfg.Timeout = 2 * time.Second
	if err := redisSettingsErr(cfg.Check(), "redis-sentinel-master", "redis-sentinel-addrs"); err != nil {
		return nil, nil, err
	}
	// The plugin's record takes each Sentinel half from its own setting or
	// adminsvc's: a name without nodes (or the reverse) is a config Kong
	// refuses at every sync, so refuse it here, at start.
	plugin := redisconn.Config{MasterName: s.PluginRedisSentinel, SentinelAddrs: splitAddrs(s.PluginRedisSentinels)}
	if plugin.MasterName == "" {
		plugin.MasterName = s.RedisSentinel
	}
	if len(plugin.SentinelAddrs) == 0 && strings.TrimSpace(s.PluginRedisSentinels) == "" {
		plugin.SentinelAddrs = cfg.SentinelAddrs
	}
	if err := redisSettingsErr(plugin.Check(), "plugin-redis-sentinel-master", "plugin-redis-sentinel-nodes"); err != nil {
		return nil, nil, err
	}
	opt, err := redis.ParseURL(s.RedisURL)
	if err != nil {
		return nil, nil, fmt.Errorf("redis url: %w", err)
	}
	rdb, err := redisconn.New(cfg)
	return rdb, opt, err
}

// redisSettingsErr names adminsvc's settings in a redisconn.Check error.
func redisSettingsErr(err error, master, addrs string) error {
	switch {
	case errors.Is(err, redisconn.ErrMasterWithoutSentinels):
		return fmt.Errorf("%s: required with %s", addrs, master)
	case errors.Is(err, redisconn.ErrSentinelsWithoutMaster):
		return fmt.Errorf("%s: required with %s", master, addrs)
	case errors.Is(err, redisconn.ErrSentinelAndCluster):
		return fmt.Errorf("%s and redis-cluster-addrs are mutually exclusive", master)
	}
	return err
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
