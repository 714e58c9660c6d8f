package kongfake

import (
	"crypto/md5"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"sort"
	"strings"

	"gopkg.in/yaml.v3"
)

// config serves /config: GET exports, POST replaces the whole
// configuration (DB-less only), answering 201 with the entities by kind and
// id, or 400 code 14 with Kong's nested field errors.
func (f *Fake) config(r *http.Request) (int, any, *apiError) {
	if !f.opts.DBLess {
		return 0, nil, message(http.StatusBadRequest, "this endpoint is only available when Kong is configured to not use a database")
	}
	switch r.Method {
	case http.MethodGet:
		f.mu.Lock()
		defer f.mu.Unlock()
		// As Kong exports it: entities flat, foreign keys as plain ids,
		// _transform false (already transformed).
		doc := map[string]any{"_format_version": "3.0", "_transform": false}
		for k, def := range kinds {
			list := f.sorted(k, nil)
			for _, e := range list {
				for _, fd := range def.fields {
					if ref, ok := e[fd.name].(map[string]any); ok && fd.typ == "foreign" {
						e[fd.name] = ref["id"]
					}
				}
			}
			if len(list) > 0 {
				doc[k] = list
			}
		}
		y, err := yaml.Marshal(doc)
		if err != nil {
			return 0, nil, message(http.StatusInternalServerError, "An unexpected error occurred")
		}
		return http.StatusOK, map[string]any{"config": string(y)}, nil
	case http.MethodPost:
	default:
		return 0, nil, message(http.StatusMethodNotAllowed, "Method not allowed")
	}
	raw, err := io.ReadAll(io.LimitReader(r.Body, 256<<20))
	if err != nil {
		return 0, nil, message(http.StatusBadRequest, "failed to read body")
	}
	doc, aerr := decodeConfig(raw, r.Header.Get("Content-Type"))
	if aerr != nil {
		return 0, nil, aerr
	}
	sum := md5.Sum(raw)
	hash := hex.EncodeToString(sum[:])
	if r.URL.Query().Get("check_hash") == "1" {
		f.mu.Lock()
		same := f.configHash == hash
		f.mu.Unlock()
		if same {
			return http.StatusNotModified, nil, nil
		}
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	old, oldIdx, oldHash := f.db, f.idx, f.configHash
	f.wipe()
	if fields := f.load(doc); len(fields) > 0 {
		f.db, f.idx, f.configHash = old, oldIdx, oldHash
		aerr := declarativeError(fields)
		if v := strings.ToLower(r.URL.Query().Get("flatten_errors")); v == "1" || v == "true" || v == "on" || v == "yes" {
			aerr.body["flattened_errors"] = flattenErrors(doc, fields)
		}
		return 0, nil, aerr
	}
	f.configHash = hash
	f.pushes++
	out := map[string]any{}
	for k, ents := range f.db {
		m := map[string]any{}
		for id, e := range ents {
			m[id] = clone(e)
		}
		out[k] = m
	}
	return http.StatusCreated, out, nil
}

// decodeConfig accepts what Kong accepts: a JSON declarative config, a JSON
// {"config": "<yaml or json>"} wrapper, or a raw YAML body.
func decodeConfig(raw []byte, contentType string) (map[string]any, *apiError) {
	var doc map[string]any
	if err := json.Unmarshal(raw, &doc); err != nil || doc == nil {
		doc = nil
		if err := yamlToJSON(raw, &doc); err != nil || doc == nil {
			return nil, message(http.StatusBadRequest, "expected a declarative configuration")
		}
	}
	if s, ok := doc["config"].(string); ok && doc["_format_version"] == nil {
		doc = nil
		if err := yamlToJSON([]byte(s), &doc); err != nil || doc == nil {
			return nil, declarativeError(map[string]any{"error": "failed parsing declarative configuration: " + errString(err)})
		}
	}
	return doc, nil
}

func errString(err error) string {
	if err == nil {
		return "expected an object"
	}
	return err.Error()
}

// yamlToJSON decodes YAML into JSON-shaped values (float64 numbers).
func yamlToJSON(raw []byte, out *map[string]any) error {
	var v any
	if err := yaml.Unmarshal(raw, &v); err != nil {
		return fmt.Errorf("decoding yaml: %w", err)
	}
	b, err := json.Marshal(v)
	if err != nil {
		return fmt.Errorf("re-encoding yaml: %w", err)
	}
	return json.Unmarshal(b, out)
}

var topLevel = map[string]bool{
	"_format_version": true, "_transform": true, "_comment": true, "_workspace": true, "_info": true,
	"services": true, "routes": true, "upstreams": true, "targets": true, "plugins": true, "consumers": true,
	"certificates": true, "ca_certificates": true, "snis": true, "vaults": true,
}

// load inserts a declarative config into the (empty) f.db and returns
// Kong-shaped errors. Called with f.mu held.
func (f *Fake) load(doc map[string]any) map[string]any {
	errs := map[string]any{}
	switch v := doc["_format_version"].(type) {
	case nil:
		errs["_format_version"] = "required field missing"
	case string:
		if v != "1.1" && v != "2.1" && v != "3.0" {
			errs["_format_version"] = "expected one of: 1.1, 2.1, 3.0"
		}
	default:
		errs["_format_version"] = "expected a string"
	}
	for k := range doc {
		if !topLevel[k] {
			errs[k] = "unknown field"
		}
	}
	if len(errs) > 0 {
		return errs
	}
	// Dependency order: parents before children.
	for _, kind := range []string{"services", "routes", "upstreams", "targets", "consumers", "plugins"} {
		list, ok := doc[kind].([]any)
		if !ok {
			if doc[kind] != nil {
				errs[kind] = "expected an array"
			}
			continue
		}
		arrErrs := make([]any, len(list))
		failed := false
		for i, item := range list {
			m, ok := item.(map[string]any)
			if !ok {
				arrErrs[i] = "expected a record"
				failed = true
				continue
			}
			if e := f.loadEntity(kind, m, nil); e != nil {
				arrErrs[i] = e
				failed = true
			}
		}
		if failed {
			errs[kind] = arrErrs
		}
	}
	return errs
}

// nested children per kind in a declarative file.
var declChildren = map[string][]string{
	"services":  {"routes", "plugins"},
	"routes":    {"plugins"},
	"upstreams": {"targets"},
	"consumers": {"plugins"},
}

func (f *Fake) loadEntity(kind string, m map[string]any, parentRef map[string]any) map[string]any {
	k := kinds[kind]
	in := map[string]any{}
	nested := map[string][]any{}
	for key, v := range m {
		if contains(declChildren[kind], key) {
			arr, _ := v.([]any)
			nested[key] = arr
			continue
		}
		in[key] = v
	}
	for key, v := range parentRef {
		in[key] = v
	}
	if in["id"] == nil {
		in["id"] = newUUID()
	}
	if kind == "plugins" && in["config"] == nil {
		in["config"] = map[string]any{}
	}
	// Declarative references are by name (or id).
	for _, fd := range k.fields {
		if s, ok := in[fd.name].(string); ok && fd.typ == "foreign" {
			in[fd.name] = map[string]any{"id": s}
		}
	}
	ent, aerr := f.validate(k, in)
	if aerr != nil {
		if fields, ok := aerr.body["fields"].(map[string]any); ok {
			return fields
		}
		return map[string]any{"@entity": []any{aerr.body["message"]}}
	}
	if uerr := f.declUnique(k, ent); uerr != "" {
		return map[string]any{k.endpointKeyOr("id"): uerr}
	}
	f.put(kind, ent)
	errs := map[string]any{}
	childNames := make([]string, 0, len(nested))
	for c := range nested {
		childNames = append(childNames, c)
	}
	sort.Strings(childNames)
	for _, c := range childNames {
		arrErrs := make([]any, len(nested[c]))
		failed := false
		for i, item := range nested[c] {
			cm, ok := item.(map[string]any)
			if !ok {
				arrErrs[i], failed = "expected a record", true
				continue
			}
			fk := strings.TrimSuffix(kind, "s")
			if e := f.loadEntity(c, cm, map[string]any{fk: map[string]any{"id": ent["id"]}}); e != nil {
				arrErrs[i], failed = e, true
			}
		}
		if failed {
			errs[c] = arrErrs
		}
	}
	if len(errs) > 0 {
		return errs
	}
	return nil
}

func (k *kindDef) endpointKeyOr(def string) string {
	if k.endpointKey != "" {
		return k.endpointKey
	}
	return def
}

func (f *Fake) declUnique(k *kindDef, ent map[string]any) string {
	if _, dup := f.db[k.name][ent["id"].(string)]; dup {
		return fmt.Sprintf("uniqueness violation: '%s' entity with primary key set to '%s' already declared", k.name, ent["id"])
	}
	if aerr := f.unique(k, ent); aerr != nil {
		if k.endpointKey != "" && ent[k.endpointKey] != nil {
			return fmt.Sprintf("uniqueness violation: '%s' entity with %s set to '%v' already declared", k.name, k.endpointKey, ent[k.endpointKey])
		}
		return fmt.Sprint(aerr.body["message"])
	}
	return ""
}

// flattenErrors is errors.lua's flatten_errors: one entry per entity with
// errors, nested entities included, carrying the entity's name, id, tags
// and type so a client can tell which of its entities Kong refused.
func flattenErrors(doc map[string]any, fields map[string]any) []any {
	out := []any{}
	var walk func(kind string, items []any, errs []any)
	walk = func(kind string, items []any, errs []any) {
		for i, e := range errs {
			if e == nil || i >= len(items) {
				continue
			}
			item, _ := items[i].(map[string]any)
			em, _ := e.(map[string]any)
			if item == nil || em == nil {
				continue
			}
			var own []any
			for field, msg := range em {
				if sub, ok := msg.([]any); ok && contains(declChildren[kind], field) {
					children, _ := item[field].([]any)
					walk(field, children, sub)
					continue
				}
				if field == "@entity" {
					for _, m := range asList(msg) {
						own = append(own, map[string]any{"type": "entity", "message": m})
					}
					continue
				}
				own = append(own, map[string]any{"type": "field", "field": field, "message": fmt.Sprint(msg)})
			}
			if len(own) == 0 {
				continue
			}
			entry := map[string]any{"entity_type": strings.TrimSuffix(kind, "s"), "entity": item, "errors": own}
			for _, k := range []string{"name", "id", "tags"} {
				if v, ok := item[k]; ok {
					entry["entity_"+k] = v
				}
			}
			out = append(out, entry)
		}
	}
	for kind, v := range fields {
		errs, ok := v.([]any)
		if !ok {
			continue
		}
		items, _ := doc[kind].([]any)
		walk(kind, items, errs)
	}
	return out
}

func asList(v any) []any {
	if l, ok := v.([]any); ok {
		return l
	}
	return []any{v}
}
