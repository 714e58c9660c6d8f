// Package sentinel tests both programs against a real Redis Sentinel
// deployment (internal/redistest.StartSentinel): the registry Store over a
// go-redis failover client, the adminsvc binary started with its Sentinel
// settings, and the plugin binary (through the Kong harness) configured with
// redis.sentinel_master and redis.sentinel_nodes, before and after the
// primary is killed and a replica promoted.
//
// It holds tests only; nothing imports it. It must not mock Redis.
package sentinel
