// Package routetable keeps every go-proxy route of a registry in memory for
// the plugin's fast path (issue 16): the catch-all Kong route serves a
// route registered a moment ago, before Kong's router has its dedicated
// route.
//
// A Table is loaded once (the route index, then one pipeline of route
// records), kept current by the registry's change feed (a message for a
// service re-reads that service's route record: upsert, or delete when it
// is gone), reloaded in full after every resubscription (messages were
// lost in between), and checked against the route index whenever the
// registry's generation moved (a backstop poll). All writes happen on one
// goroutine; readers see an immutable snapshot through one atomic load and
// never lock.
//
// Match follows Kong's router (kong/router/traditional.lua, and compat.lua
// get_priority for the ATC flavours, in 3.4 and 3.9) for these routes,
// which all have one host and one plain path prefix: a route with an exact
// host beats every route with a wildcard host, then the longest path prefix
// wins; the host is the Host header without its port, compared as sent
// (Kong does not lowercase it), and the path is the normalized request path
// (kong.request.get_path, the string Kong's router matches) compared as a
// plain string prefix.
package routetable
