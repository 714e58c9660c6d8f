// Package e2e runs the real service-registry plugin binary through the Kong
// harness (tests/harness) with real Redis and real backends on loopback:
// discovery, fail-static behaviour, Kong pass-through, bad config, plugin
// restarts and the PDK call budget, as a Kong node would exercise them.
//
// It holds tests and benchmarks only; nothing imports it.
package e2e
