package main

import (
	"strings"
	"testing"
)

// TestNewRedisSentinelSettings: half a Sentinel setting is refused at start
// instead of running against another Redis (or none) than configured.
func TestNewRedisSentinelSettings(t *testing.T) {
	cases := []struct {
		name                      string
		master, addrs, cluster    string
		pluginMaster, pluginNodes string
		wantErr                   string
	}{
		{name: "plugin master without nodes", pluginMaster: "m", wantErr: "plugin-redis-sentinel-nodes: required"},
		{name: "plugin nodes without master", pluginNodes: "127.0.0.1:26379", wantErr: "plugin-redis-sentinel-master: required"},
		{name: "plugin master with adminsvc's nodes", master: "m", addrs: "127.0.0.1:26379", pluginMaster: "other"},
		{name: "plugin nodes with adminsvc's master", master: "m", addrs: "127.0.0.1:26379", pluginNodes: "127.0.0.2:26379"},
		{name: "plugin-only sentinel", pluginMaster: "m", pluginNodes: "127.0.0.2:26379"},
		{name: "master without addrs", master: "mymaster", wantErr: "redis-sentinel-addrs: required"},
		{name: "master with blank addrs", master: "mymaster", addrs: " , ", wantErr: "redis-sentinel-addrs: required"},
		{name: "addrs without master", addrs: "127.0.0.1:26379", wantErr: "redis-sentinel-master: required"},
		{name: "sentinel and cluster", master: "m", addrs: "127.0.0.1:26379", cluster: "127.0.0.1:7000", wantErr: "mutually exclusive"},
		{name: "sentinel", master: "m", addrs: "127.0.0.1:26379,127.0.0.1:26380"},
		{name: "standalone"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			s := &Settings{RedisURL: "redis://:pw@127.0.0.1:6379/2", RedisSentinel: c.master, RedisSentinels: c.addrs, RedisCluster: c.cluster,
				PluginRedisSentinel: c.pluginMaster, PluginRedisSentinels: c.pluginNodes}
			rdb, opt, err := newRedis(s)
			if c.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), c.wantErr) {
					t.Fatalf("err = %v, want %q", err, c.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			defer rdb.Close()
			if opt.Password != "pw" || opt.DB != 2 {
				t.Fatalf("options from the URL: %+v", opt)
			}
		})
	}
}
