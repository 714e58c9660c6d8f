// Package clienttest runs the pieces the client and srctl tests talk to:
// a real adminsvc process (built from ./adminsvc) on a loopback port backed
// by a real redis-server, and a loopback proxy that can inject 5xx answers
// or refuse connections, to test retries.
//
// It is test support: only _test.go files import it, and it must never be
// imported by the client itself (the client depends on the standard library
// only).
package clienttest
