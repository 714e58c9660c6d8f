// Package translator turns registry state (go-proxy routes and the instances
// of their registry services) into the Kong entities that should exist:
// service, route, upstream with targets, the service-registry plugin and, for
// response headers, the bundled response-transformer plugin. Everything it
// emits carries the managed-by:service-registry tag.
//
// Translate is a pure function: no I/O, no clock, no logging. A route that
// cannot be translated is reported in State.Errors and never blocks the
// others. Talking to Kong is internal/kongsync's job, not this package's.
package translator
