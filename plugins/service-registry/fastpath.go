package main

// noRouteJSON is Kong's own answer when its router matches nothing
// (kong/runloop/handler.lua: kong.response.error(404, "no Route matched
// with those values"), JSON template of kong/tools/utils.lua).
var noRouteJSON = []byte("{\n  \"message\":\"no Route matched with those values\"\n}")

var noRouteHeaders = map[string][]string{"Content-Type": {"application/json; charset=utf-8"}}

// fastPath serves a request on the catch-all route (fast_path: true). Until
// the route table serves registered routes, every request is one Kong's
// router did not match: answer as Kong does then, so the catch-all stays
// invisible to clients.
func (c *Config) fastPath(k kongAPI) (string, outcome) {
	k.ExitHeaders(404, noRouteJSON, noRouteHeaders)
	return "", outPassed
}
