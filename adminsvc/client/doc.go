// Package client is the Go client of the service registry's HTTP API
// (adminsvc): the go-proxy calls (Register, Deregister, Routes, Health), the
// /v1 extensions (services, instances, weights, heartbeats, maintenance) and
// a Registrar that registers a process on start, keeps its lease alive and
// deregisters it on SIGTERM.
//
// It is meant to be imported by the services that register themselves, so it
// depends on the standard library only and on nothing under internal/.
//
// Retries: connection errors and 5xx answers are retried with exponential
// backoff and jitter; 4xx answers never are (the request itself is wrong, and
// repeating it cannot help). Every call takes a context and every attempt has
// its own timeout. It must not log request bodies (they may carry secrets in
// options) and must not retry on anything but transport errors and 5xx.
package client
