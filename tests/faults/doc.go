// Package faults is the fault-injection toolkit of the reliability suites and
// the suites themselves (its _test.go files): everything runs on loopback
// with real processes, no external services.
//
// What it offers to tests in any package:
//   - Proxy: a TCP proxy in front of Redis (or anything) that can add
//     latency, reset connections, refuse new ones (drop) or blackhole them
//     (accept and never answer), then heal; every mode is bounded and Stop
//     closes everything it opened;
//   - HTTPFaults: an http.Handler wrapper (in front of tests/kongfake) that
//     can be slow, answer 5xx or be down (connections closed), then heal;
//   - Adminsvc: the real adminsvc binary against a Redis and a Kong Admin URL
//     of the test's choice, with Stop/Kill/Restart and its log;
//   - CA: a throwaway certificate authority and a loopback server
//     certificate, for Redis TLS tests (RedisTLS gives redistest's Extra);
//   - PluginBinary builds ./plugins/service-registry for tests/harness, whose
//     Process().Kill() kills the plugin server (Kong respawns it);
//   - Goroutines: a leak check that polls until the count settles.
//
// Redis itself is killed, paused, resumed and restarted with
// internal/redistest's Server methods.
//
// It is a test instrument: nothing outside tests may import it, and it must
// never reach beyond 127.0.0.1.
package faults
