// Package harness plays Kong 3.9's side of the external plugin protocol so that
// tests run the real plugin binary the way Kong does, without Docker or Kong.
//
// It follows Kong's source (kong/runloop/plugin_servers/{plugin,process}.lua,
// rpc/pb_rpc.lua, kong/pdk/*.lua) and /work/shared/KONG-FACTS.md:
//   - process: runs `<bin> -dump` (the query command) and refuses what Kong 3.4.2 and
//     3.9.3 refuse at start, with Kong's message (VERSION not x.y.z, PRIORITY, name,
//     phases, schema: kongschema.CheckLoad, tests/KONG-NOTES.md), validates plugin
//     configs with kongschema, starts `<bin> -kong-prefix <dir>`, copies its output to a log
//     with the `[name:pid] ` prefix and respawns it when it exits;
//   - protocol: little-endian uint32 frames over the plugin's unix socket, a pool
//     of keepalive connections, Kong's sequence numbers checked on every reply,
//     instances cached per plugin entity and __seq__, the event/PDK-call loop,
//     response.exit never answered;
//   - PDK: the methods a plugin calls, answered with Kong's semantics, the log
//     phase limited to what Kong saved for its timer; unimplemented methods fail
//     the test loudly;
//   - HTTP: a real loopback proxy with Kong's router rules, retries, Host header,
//     error bodies (negotiated from Accept) and headers, the log event after the
//     response is sent; Options.Version "3.4.x" gives Kong 3.4's error pages and
//     headers (no request ids), checked against real Kongs by tests/realkong.
//
// It counts events and PDK calls per request for tests and benchmarks.
//
// Usage (see tests/e2e for complete scenarios):
//
//	k := harness.Start(t, harness.Options{Binary: bin}) // bin's base name = plugin name
//	k.AddService(harness.Service{Name: "orders", Host: "127.0.0.1", Port: 8080})
//	k.AddRoute(harness.Route{Name: "orders", Service: "orders", Paths: []string{"/orders"}})
//	_, err := k.AddPlugin(harness.PluginConfig{Service: "orders", Config: cfg}) // *SchemaError if Kong refuses it
//	resp, _ := http.Get(k.URL() + "/orders")
//	rs, _ := k.WaitRequests(ctx, 1) // rs[0].CallsByPhase["access"], rs[0].Events["log"], ...
//
// It is a test instrument: nothing outside tests may import it, and it must not
// take shortcuts around the socket (no in-process plugin calls).
package harness
