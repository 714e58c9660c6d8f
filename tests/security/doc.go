// Package security holds the security tests of both programs, run against
// the real binaries, a real redis-server and the Kong harness: API keys on
// the registry API, hostile input (header injection, schemes, body size),
// Redis AUTH and TLS with a test CA, and secrets kept out of the logs.
//
// It has no non-test code and must not be imported.
package security
