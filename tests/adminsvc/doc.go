// Package adminsvc holds the end-to-end tests of the adminsvc binary: the
// go-proxy contract row by row, the seed guide's curl, Python and Go clients
// run as written, Kong sync against tests/kongfake in DB and DB-less mode,
// decK against the fake, restarts with an AOF Redis, several replicas, and
// the sync benchmarks. Every test runs the real binary against a real
// redis-server on loopback ports; nothing here is imported by other code.
package adminsvc
