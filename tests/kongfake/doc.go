// Package kongfake is an in-process fake of the Kong 3.9 Admin API, faithful
// to what go-kong (internal/kongsync) and decK use: services, routes,
// upstreams, targets and plugins (top-level and nested), tag filtering,
// pagination, /, /status, /schemas and DB-less /config, with Kong's
// validation rules, error bodies and status codes as read in Kong's source
// (kong/db/schema/entities, kong/db/errors.lua, kong/api/endpoints.lua).
//
// It is a test instrument: nothing outside tests may import it, and it must
// not grow behaviour Kong does not have. Plugin configs are checked by a
// PluginSchema (tests/kongschema reading the plugin's -dump output).
package kongfake
