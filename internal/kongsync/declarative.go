package kongsync

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"strings"

	"github.com/kong/go-kong/kong"
	"gopkg.in/yaml.v3"

	"github.com/kong-service-registry/service-registry/internal/translator"
)

// A DB-less push is one declarative config: a base (the operator's file,
// or what Kong serves now) without the entities tagged as ours, plus ours.

func parseBase(raw []byte) (map[string]any, error) {
	if len(bytes.TrimSpace(raw)) == 0 {
		return map[string]any{}, nil
	}
	var v any
	if err := yaml.Unmarshal(raw, &v); err != nil {
		return nil, fmt.Errorf("kong base config: %w", err)
	}
	// Re-encode through JSON so nested maps have string keys.
	b, err := json.Marshal(v)
	if err != nil {
		return nil, fmt.Errorf("kong base config: %w", err)
	}
	var m map[string]any
	if err := json.Unmarshal(b, &m); err != nil {
		return nil, fmt.Errorf("kong base config: expected a mapping: %w", err)
	}
	return m, nil
}

// BuildDeclarative returns the declarative config (JSON) for a DB-less push:
// base's entities, minus any tagged managed-by (the registry owns those),
// plus st's services, upstreams and global plugins (top-level plugins).
func BuildDeclarative(base map[string]any, st translator.State) ([]byte, error) {
	doc := make(map[string]any, len(base)+2)
	for k, v := range base {
		doc[k] = v
	}
	if doc["_format_version"] == nil {
		doc["_format_version"] = "3.0"
	}
	services := unmanaged(base["services"])
	for _, s := range st.Services {
		services = append(services, s)
	}
	upstreams := unmanaged(base["upstreams"])
	for _, u := range st.Upstreams {
		upstreams = append(upstreams, u)
	}
	doc["services"] = services
	doc["upstreams"] = upstreams
	// Every other list of entities (routes, plugins, targets as Kong's
	// GET /config writes them, consumers...) loses the entities tagged as ours.
	for k, v := range base {
		if _, isList := v.([]any); isList && k != "services" && k != "upstreams" {
			doc[k] = unmanaged(v)
		}
	}
	if len(st.Plugins) > 0 {
		plugins := unmanaged(base["plugins"])
		for _, p := range st.Plugins {
			plugins = append(plugins, p)
		}
		doc["plugins"] = plugins
	}
	b, err := json.Marshal(doc)
	if err != nil {
		return nil, fmt.Errorf("encoding declarative config: %w", err)
	}
	return b, nil
}

func unmanaged(v any) []any {
	list, _ := v.([]any)
	out := make([]any, 0, len(list))
	for _, e := range list {
		if m, ok := e.(map[string]any); ok && hasTag(mapTags(m), translator.TagManaged) {
			continue
		}
		out = append(out, e)
	}
	return out
}

// mapTags reads the tags of an entity of a declarative config.
func mapTags(m map[string]any) []string {
	list, _ := m["tags"].([]any)
	out := make([]string, 0, len(list))
	for _, t := range list {
		if s, ok := t.(string); ok {
			out = append(out, s)
		}
	}
	return out
}

// refusedRoutes reads Kong's flattened_errors (POST /config?flatten_errors=1)
// and returns the sr-host/sr-path tag pairs of the refused entities, each
// with Kong's first message about it.
func refusedRoutes(err error) map[string]string {
	var apiErr *kong.APIError
	if !errors.As(err, &apiErr) || apiErr.Code() != http.StatusBadRequest {
		return nil
	}
	var body struct {
		Flattened []struct {
			Tags   []string `json:"entity_tags"`
			Type   string   `json:"entity_type"`
			Errors []struct {
				Field   string `json:"field"`
				Message string `json:"message"`
			} `json:"errors"`
		} `json:"flattened_errors"`
	}
	if json.Unmarshal(apiErr.Raw(), &body) != nil {
		return nil
	}
	out := map[string]string{}
	for _, f := range body.Flattened {
		if pair := tagPair(f.Tags); pair != "|" && hasTag(f.Tags, translator.TagManaged) {
			msg := f.Type + " refused"
			if len(f.Errors) > 0 {
				msg = f.Type + ": " + strings.TrimPrefix(f.Errors[0].Field+": ", ": ") + f.Errors[0].Message
			}
			if out[pair] == "" {
				out[pair] = msg
			}
		} else {
			// Something of the operator's base config: nothing to drop.
			return nil
		}
	}
	return out
}

// withoutRoutes drops the entities of the routes whose tag pairs are in bad,
// and the global plugin when bad names it (translator.TagGlobal): the
// route services then carry their own service-registry plugins instead
// (translator.ServiceScope), so no route is left without one.
func withoutRoutes(st translator.State, bad map[string]string) (translator.State, []Refusal) {
	out := translator.State{Errors: st.Errors}
	var dropped []Refusal
	globalDropped := false
	for _, p := range st.Plugins {
		if msg, ok := bad[tagPair(p.Tags)]; ok {
			dropped = append(dropped, Refusal{Kind: kindPlugin.String(), Name: p.Name, Route: translator.TagGlobal, Message: msg})
			globalDropped = true
			continue
		}
		out.Plugins = append(out.Plugins, p)
	}

	for _, s := range st.Services {
		pair := tagPair(s.Tags)
		if msg, ok := bad[pair]; ok {
			dropped = append(dropped, Refusal{Kind: kindService.String(), Name: s.Name, Route: pair, Message: msg})
			continue
		}
		out.Services = append(out.Services, s)
	}
	for _, u := range st.Upstreams {
		if _, ok := bad[tagPair(u.Tags)]; !ok {
			out.Upstreams = append(out.Upstreams, u)
		}
	}
	if globalDropped {
		out = translator.ServiceScope(out)
	}
	return out, dropped
}

// declarativeGlobal finds an operator's own global plugin named name in a
// declarative config (top-level plugins without service, route or
// consumer, as kong.yml and Kong's GET /config write them) and returns its
// instance name, id or name ("" when none). Kong holds one global instance
// per plugin name.
func declarativeGlobal(base map[string]any, name string) string {
	for _, e := range unmanaged(base["plugins"]) {
		m, ok := e.(map[string]any)
		if !ok || m["name"] != name || !emptyRef(m["service"]) || !emptyRef(m["route"]) || !emptyRef(m["consumer"]) {
			continue
		}
		for _, k := range []string{"instance_name", "id"} {
			if s, _ := m[k].(string); s != "" {
				return s
			}
		}
		return name
	}
	return ""
}

// emptyRef reports whether a declarative foreign key is unset: absent,
// null, "" or an empty record.
func emptyRef(v any) bool {
	switch r := v.(type) {
	case nil:
		return true
	case string:
		return r == ""
	case map[string]any:
		return len(r) == 0
	}
	return false
}
