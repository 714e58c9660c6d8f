package kongfake

import (
	"net/http"
	"sort"
)

func (f *Fake) database() string {
	if f.opts.DBLess {
		return "off"
	}
	return "postgres"
}

// info is GET /: what go-kong and decK read (version, database, plugins).
func (f *Fake) info() map[string]any {
	f.mu.Lock()
	defer f.mu.Unlock()
	avail := map[string]any{"response-transformer": map[string]any{"version": f.opts.Version, "priority": 800}}
	names := []string{"response-transformer"}
	for n := range f.opts.Plugins {
		avail[n] = map[string]any{"version": "0.1.0", "priority": 1000}
		names = append(names, n)
	}
	sort.Strings(names)
	inUse := map[string]bool{}
	for _, p := range f.db["plugins"] {
		inUse[p["name"].(string)] = true
	}
	enabled := []any{}
	for _, n := range names {
		if inUse[n] {
			enabled = append(enabled, n)
		}
	}
	plugins := append([]string{"bundled"}, names...)
	pl := make([]any, len(plugins))
	for i, p := range plugins {
		pl[i] = p
	}
	return map[string]any{
		"version":     f.opts.Version,
		"edition":     "community",
		"tagline":     "Welcome to kong",
		"hostname":    "kongfake",
		"node_id":     "6a72f0d8-3b7c-4e3a-9a07-2b6a8a9b1f00",
		"lua_version": "LuaJIT 2.1.0-20231117",
		"timers":      map[string]any{"running": 0, "pending": 5},
		"configuration": map[string]any{
			"database":      f.database(),
			"plugins":       pl,
			"admin_listen":  []any{"127.0.0.1:8001"},
			"proxy_listen":  []any{"0.0.0.0:8000"},
			"role":          "traditional",
			"router_flavor": "traditional_compatible",
			// DB mode's timings (adminsvc's fast path reads them).
			"db_update_frequency":           f.opts.UpdateFrequency,
			"db_update_propagation":         0,
			"worker_state_update_frequency": f.opts.UpdateFrequency,
		},
		"plugins": map[string]any{"available_on_server": avail, "enabled_in_cluster": enabled},
	}
}

func (f *Fake) status() map[string]any {
	f.mu.Lock()
	defer f.mu.Unlock()
	st := map[string]any{
		"database": map[string]any{"reachable": true},
		"memory":   map[string]any{"lua_shared_dicts": map[string]any{}, "workers_lua_vms": []any{}},
		"server": map[string]any{"connections_accepted": 1, "connections_active": 1, "connections_handled": 1,
			"connections_reading": 0, "connections_waiting": 0, "connections_writing": 1, "total_requests": 1},
	}
	if f.opts.DBLess {
		st["configuration_hash"] = f.configHash
	}
	return st
}

// schemas serves /schemas/{kind} and /schemas/plugins/{name} in Kong's
// shape: {"fields": [{"name": {...}}, ...]}.
func (f *Fake) schemas(segs []string) (int, any, *apiError) {
	switch {
	case len(segs) == 1 && kinds[segs[0]] != nil:
		return http.StatusOK, map[string]any{"fields": schemaFields(kinds[segs[0]].fields)}, nil
	case len(segs) == 2 && segs[0] == "plugins":
		schema, ok := f.pluginSchema(segs[1])
		if !ok {
			return 0, nil, message(http.StatusNotFound, "No plugin named '"+segs[1]+"'")
		}
		if raw, ok := schema.(interface{ RawSchema() map[string]any }); ok && raw.RawSchema() != nil {
			// Kong shows every nested record as required (KONG-FACTS.md).
			return http.StatusOK, recordsRequired(clone(raw.RawSchema())), nil
		}
		return http.StatusOK, map[string]any{"fields": []any{
			map[string]any{"protocols": map[string]any{"type": "set", "required": true, "default": []any{"grpc", "grpcs", "http", "https"}, "elements": map[string]any{"type": "string"}}},
			map[string]any{"config": map[string]any{"type": "record", "required": true, "fields": []any{}}},
		}}, nil
	}
	return 0, nil, notFound()
}

func schemaFields(fs []field) []any {
	out := make([]any, 0, len(fs))
	for _, fd := range fs {
		out = append(out, map[string]any{fd.name: fd.describe()})
	}
	return out
}

func (fd field) describe() map[string]any {
	d := map[string]any{"type": fd.typ}
	switch fd.typ {
	case "foreign":
		d["reference"] = fd.reference
	case "config":
		d["type"] = "record"
	}
	if fd.name == "id" {
		d["type"], d["uuid"], d["auto"] = "string", true, true
	}
	if fd.auto && fd.name != "id" {
		d["timestamp"], d["auto"] = true, true
	}
	if fd.def != nil {
		d["default"] = fd.def
	}
	if fd.required {
		d["required"] = true
	}
	if len(fd.oneOf) > 0 {
		d["one_of"] = fd.oneOf
	}
	if fd.between != nil {
		d["between"] = []any{fd.between[0], fd.between[1]}
	}
	if fd.elem != nil {
		d["elements"] = fd.elem.describe()
	}
	if len(fd.fields) > 0 {
		d["fields"] = schemaFields(fd.fields)
	}
	return d
}

func recordsRequired(v any) any {
	switch x := v.(type) {
	case map[string]any:
		if x["type"] == "record" {
			x["required"] = true
		}
		for _, e := range x {
			recordsRequired(e)
		}
	case []any:
		for _, e := range x {
			recordsRequired(e)
		}
	}
	return v
}
