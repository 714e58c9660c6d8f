// Package load holds bounded load tests (loopback only, fixed request
// counts and a time cap) of the registry API (mixed register, deregister,
// list against the real adminsvc and redis-server) and of the plugin
// through the Kong harness. Each reports throughput and p99 and fails if
// anything acknowledged is lost or a request fails.
//
// It has no non-test code and must not be imported.
package load
