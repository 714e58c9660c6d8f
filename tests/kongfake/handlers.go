package kongfake

import (
	"encoding/base64"
	"fmt"
	"net/http"
	"net/url"
	"sort"
	"strconv"
	"strings"
)

// ServeHTTP routes an Admin API request.
func (f *Fake) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	segs := splitPath(r.URL.EscapedPath())
	f.mu.Lock()
	f.counts[r.Method+" "+template(segs)]++
	f.mu.Unlock()

	w.Header().Set("Server", "kong/"+f.opts.Version)
	status, body, aerr := f.route(r, segs)
	if aerr != nil {
		writeJSON(w, aerr.status, aerr.body)
		return
	}
	writeJSON(w, status, body)
}

func splitPath(p string) []string {
	var out []string
	for _, s := range strings.Split(strings.Trim(p, "/"), "/") {
		if s == "" {
			continue
		}
		if u, err := url.PathUnescape(s); err == nil {
			s = u
		}
		out = append(out, s)
	}
	return out
}

// template replaces entity keys with {id} so counters group by endpoint.
func template(segs []string) string {
	out := make([]string, len(segs))
	for i, s := range segs {
		out[i] = s
		if i%2 == 1 && segs[0] != "schemas" {
			out[i] = "{id}"
		}
	}
	return "/" + strings.Join(out, "/")
}

func (f *Fake) route(r *http.Request, segs []string) (int, any, *apiError) {
	if len(segs) == 0 {
		if r.Method != http.MethodGet {
			return 0, nil, message(http.StatusMethodNotAllowed, "Method not allowed")
		}
		return http.StatusOK, f.info(), nil
	}
	switch segs[0] {
	case "status":
		return http.StatusOK, f.status(), nil
	case "config":
		return f.config(r)
	case "schemas":
		return f.schemas(segs[1:])
	case "tags":
		if len(segs) != 2 || r.Method != http.MethodGet {
			return 0, nil, notFound()
		}
		return f.byTag(r, segs[1])
	case "targets":
		// Kong disables the top-level target endpoints (kong/api/routes/targets.lua).
		if len(segs) <= 2 {
			return 0, nil, notFound()
		}
	}
	k := kinds[segs[0]]
	if k == nil {
		if emptyCollections[segs[0]] && len(segs) == 1 && r.Method == http.MethodGet {
			return http.StatusOK, map[string]any{"data": []any{}, "next": nil}, nil
		}
		return 0, nil, notFound()
	}
	switch len(segs) {
	case 1:
		switch r.Method {
		case http.MethodGet:
			return f.list(r, k, "", nil)
		case http.MethodPost:
			return f.write(r, k, "", nil, nil)
		}
	case 2:
		return f.entity(r, k, segs[1], "", nil)
	case 3, 4:
		childName := segs[2]
		fk, ok := children[k.name][childName]
		if !ok {
			return 0, nil, notFound()
		}
		f.mu.Lock()
		parent := f.lookup(k, segs[1])
		var pid string
		if parent != nil {
			pid = parent["id"].(string)
		}
		f.mu.Unlock()
		if parent == nil {
			return 0, nil, notFound()
		}
		child := kinds[childName]
		if len(segs) == 4 {
			return f.entity(r, child, segs[3], fk, map[string]any{"id": pid})
		}
		switch r.Method {
		case http.MethodGet:
			return f.list(r, child, fk, map[string]any{"id": pid})
		case http.MethodPost:
			return f.write(r, child, "", nil, map[string]any{fk: map[string]any{"id": pid}})
		}
	}
	return 0, nil, message(http.StatusMethodNotAllowed, "Method not allowed")
}

func (f *Fake) entity(r *http.Request, k *kindDef, key, parentField string, parent map[string]any) (int, any, *apiError) {
	f.mu.Lock()
	e := f.lookupIn(k, key, parentField, parent)
	var cur map[string]any
	if e != nil {
		cur = clone(e).(map[string]any)
	}
	f.mu.Unlock()
	var forced map[string]any
	if parentField != "" {
		forced = map[string]any{parentField: parent}
	}
	switch r.Method {
	case http.MethodGet:
		if cur == nil {
			return 0, nil, notFound()
		}
		return http.StatusOK, cur, nil
	case http.MethodDelete:
		if f.opts.DBLess {
			return 0, nil, operationUnsupported("remove", k.name)
		}
		if cur == nil {
			return http.StatusNoContent, nil, nil
		}
		return f.delete(k, cur["id"].(string))
	case http.MethodPatch:
		if f.opts.DBLess {
			return 0, nil, operationUnsupported("update", k.name)
		}
		if cur == nil {
			return 0, nil, patchNotFound(k, key, parentField != "")
		}
		return f.write(r, k, cur["id"].(string), cur, forced)
	case http.MethodPut:
		if f.opts.DBLess {
			return 0, nil, operationUnsupported("create or update", k.name)
		}
		if cur != nil {
			return f.write(r, k, cur["id"].(string), map[string]any{"created_at": cur["created_at"]}, forced)
		}
		// Kong's target PUT only updates (update_target_cb): 404 when absent.
		if k.name == "targets" {
			return 0, nil, notFound()
		}
		if isUUID(key) {
			return f.write(r, k, key, map[string]any{}, forced)
		}
		if k.endpointKey == "" {
			return 0, nil, notFound()
		}
		if forced == nil {
			forced = map[string]any{}
		}
		forced[k.endpointKey] = key
		return f.write(r, k, newUUID(), map[string]any{}, forced)
	}
	return 0, nil, message(http.StatusMethodNotAllowed, "Method not allowed")
}

func (f *Fake) lookupIn(k *kindDef, key, parentField string, parent map[string]any) map[string]any {
	if parentField == "" {
		return f.lookup(k, key)
	}
	pid := parent["id"]
	for _, e := range f.db[k.name] {
		if ref, ok := e[parentField].(map[string]any); !ok || ref["id"] != pid {
			continue
		}
		if e["id"] == key || (k.endpointKey != "" && e[k.endpointKey] == key) {
			return e
		}
		// Targets are also addressed by their target without the default port.
		if k.name == "targets" && (e["target"] == key+":8000") {
			return e
		}
	}
	return nil
}

func (f *Fake) list(r *http.Request, k *kindDef, parentField string, parent map[string]any) (int, any, *apiError) {
	q := r.URL.Query()
	size := 100
	if s := q.Get("size"); s != "" {
		n, err := strconv.Atoi(s)
		if err != nil {
			return 0, nil, &apiError{http.StatusBadRequest, map[string]any{"code": codeInvalidSize, "name": "invalid size", "message": "size must be a number"}}
		}
		if n < 1 || n > 1000 {
			return 0, nil, &apiError{http.StatusBadRequest, map[string]any{"code": codeInvalidSize, "name": "invalid size", "message": "size must be an integer between 1 and 1000"}}
		}
		size = n
	}
	var tags []string
	and := true
	// Kong's /upstreams/{id}/targets (kong/api/routes/upstreams.lua) pages
	// targets itself and ignores ?tags=.
	if t, ok := q["tags"]; ok && k.name != "targets" {
		if e := f.emptyTagsError(t); e != nil {
			return 0, nil, e
		}
		switch {
		case strings.Contains(t[0], "/") && strings.Contains(t[0], ","):
			return 0, nil, &apiError{http.StatusBadRequest, map[string]any{"code": codeInvalidOptions, "name": "invalid options", "message": "invalid option (tags: invalid filter syntax)", "options": map[string]any{"tags": "invalid filter syntax"}}}
		case strings.Contains(t[0], "/"):
			tags, and = strings.Split(t[0], "/"), false
		default:
			tags = strings.Split(t[0], ",")
		}
	}
	start := ""
	if o := q.Get("offset"); o != "" {
		b, err := base64.RawURLEncoding.DecodeString(o)
		if err != nil || !isUUID(string(b)) {
			return 0, nil, &apiError{http.StatusBadRequest, map[string]any{"code": codeInvalidOffset, "name": "invalid offset", "message": "'" + o + "' is not a valid offset: bad base64 encoding"}}
		}
		start = string(b)
	}
	f.mu.Lock()
	all := f.page(k.name, func(e map[string]any) bool {
		if parentField != "" {
			ref, _ := e[parentField].(map[string]any)
			if ref == nil || ref["id"] != parent["id"] {
				return false
			}
		}
		return matchTags(e, tags, and) && e["id"].(string) >= start
	}, size)
	f.mu.Unlock()
	body := map[string]any{"next": nil}
	if len(all) > size {
		next := base64.RawURLEncoding.EncodeToString([]byte(all[size]["id"].(string)))
		body["offset"] = next
		nq := url.Values{"offset": {next}}
		if q.Get("tags") != "" {
			nq.Set("tags", q.Get("tags"))
		}
		if q.Get("size") != "" {
			nq.Set("size", q.Get("size"))
		}
		p := r.URL.Path
		body["next"] = p + "?" + nq.Encode()
		all = all[:size]
	}
	data := make([]any, len(all))
	for i, e := range all {
		data[i] = e
	}
	body["data"] = data
	return http.StatusOK, body, nil
}

func matchTags(e map[string]any, want []string, and bool) bool {
	if len(want) == 0 {
		return true
	}
	ts, _ := e["tags"].([]any)
	has := func(w string) bool {
		for _, t := range ts {
			if t == w {
				return true
			}
		}
		return false
	}
	for _, w := range want {
		if has(w) && !and {
			return true
		}
		if !has(w) && and {
			return false
		}
	}
	return and
}

// write inserts (id "" or cur == empty) or replaces/merges an entity.
// base holds fields kept from the current entity (PATCH: all of it), forced
// fields win over the body (nested endpoints, PUT by name).
func (f *Fake) write(r *http.Request, k *kindDef, id string, base, forced map[string]any) (int, any, *apiError) {
	if f.opts.DBLess {
		return 0, nil, operationUnsupported("create", k.name)
	}
	body, aerr := readBody(r)
	if aerr != nil {
		return 0, nil, aerr
	}
	if strings.HasPrefix(r.Header.Get("Content-Type"), "application/x-www-form-urlencoded") {
		coerce(k.fields, body)
	}
	patch := r.Method == http.MethodPatch
	in := map[string]any{}
	if patch {
		in = deepMerge(base, body)
	} else {
		for kk, v := range body {
			in[kk] = v
		}
	}
	for kk, v := range forced {
		in[kk] = v
	}
	status := http.StatusOK
	if id == "" {
		status = http.StatusCreated
		if s, ok := in["id"].(string); ok {
			id = s
		} else if in["id"] == nil {
			id = newUUID()
		}
	}
	if s, ok := in["id"].(string); ok && s != id && r.Method != http.MethodPost {
		in["id"] = id
	}
	if in["id"] == nil {
		in["id"] = id
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	if r.Method == http.MethodPost {
		if _, exists := f.db[k.name][id]; exists {
			return 0, nil, &apiError{http.StatusBadRequest, map[string]any{"code": 3, "name": "primary key violation",
				"message": "primary key violation on key '{id=\"" + id + "\"}'", "fields": map[string]any{"id": id}}}
		}
	}
	ent, aerr := f.validate(k, in)
	if aerr != nil {
		return 0, nil, aerr
	}
	now := float64(f.opts.Now().Unix())
	if k.name == "targets" {
		// targets use auto_timestamp_ms: seconds with millisecond fraction.
		now = float64(f.opts.Now().UnixMilli()) / 1000
	}
	if c, ok := base["created_at"].(float64); ok {
		ent["created_at"] = c
	} else {
		ent["created_at"] = now
	}
	if k.has("updated_at") {
		ent["updated_at"] = now
	}
	if aerr := f.unique(k, ent); aerr != nil {
		return 0, nil, aerr
	}
	f.put(k.name, ent)
	if r.Method == http.MethodPut && base != nil && base["created_at"] == nil {
		status = http.StatusOK
	}
	return status, clone(ent), nil
}

func (k *kindDef) has(name string) bool {
	for _, f := range k.fields {
		if f.name == name {
			return true
		}
	}
	return false
}

func deepMerge(base, patch map[string]any) map[string]any {
	out := clone(base).(map[string]any)
	for k, v := range patch {
		if pm, ok := v.(map[string]any); ok {
			if bm, ok := out[k].(map[string]any); ok && k != "service" && k != "route" && k != "consumer" && k != "upstream" {
				out[k] = deepMerge(bm, pm)
				continue
			}
		}
		out[k] = v
	}
	return out
}

// validate checks an entity like Kong's schema + DAO: field types and
// defaults, entity checks, foreign keys, plugin config. Called with f.mu held.
func (f *Fake) validate(k *kindDef, in map[string]any) (map[string]any, *apiError) {
	f.resolveForeignNames(k, in)
	if k.name == "services" {
		expandServiceURL(in)
	}
	if e := precheck(k, in); e != nil {
		return nil, e
	}
	rec := field{typ: "record", fields: k.fields}
	out, errs := rec.checkRecord(in, true)
	if errs != nil {
		return nil, schemaViolation(errs.(map[string]any))
	}
	ent := out.(map[string]any)
	if id, _ := ent["id"].(string); !isUUID(id) {
		return nil, schemaViolation(map[string]any{"id": "expected a valid UUID"})
	}
	if k.name == "routes" {
		if e := routeEntityCheck(ent); e != "" {
			return nil, schemaViolation(map[string]any{"@entity": []any{e}})
		}
	}
	if k.name == "plugins" {
		if e := f.checkPluginConfig(ent); e != nil {
			return nil, e
		}
	}
	if e := f.checkForeignKeys(k, ent); e != nil {
		return nil, e
	}
	return ent, nil
}

// resolveForeignNames turns foreign keys given by endpoint key ({"name":
// "x"} or a non-UUID id), which the Admin API accepts, into {"id": ...}.
func (f *Fake) resolveForeignNames(k *kindDef, in map[string]any) {
	for _, fd := range k.fields {
		if fd.typ != "foreign" {
			continue
		}
		ref, ok := in[fd.name].(map[string]any)
		if !ok {
			continue
		}
		key, _ := ref["id"].(string)
		if key == "" {
			key, _ = ref["name"].(string)
		}
		if key != "" && !isUUID(key) {
			if p := f.lookup(kinds[fd.reference], key); p != nil {
				in[fd.name] = map[string]any{"id": p["id"]}
			}
		}
	}
}

// expandServiceURL replaces a service's url shorthand by protocol, host,
// port and path.
func expandServiceURL(in map[string]any) {
	u, ok := in["url"].(string)
	if !ok {
		return
	}
	delete(in, "url")
	if pu, err := url.Parse(u); err == nil && pu.Host != "" {
		in["protocol"] = pu.Scheme
		in["host"] = pu.Hostname()
		if p := pu.Port(); p != "" {
			n, _ := strconv.Atoi(p)
			in["port"] = float64(n)
		} else if pu.Scheme == "https" {
			in["port"] = 443.0
		}
		if pu.Path != "" {
			in["path"] = pu.Path
		}
	}
}

// precheck runs the checks Kong makes before the field schema: a target's
// form and a route's protocols subschema.
func precheck(k *kindDef, in map[string]any) *apiError {
	if k.name == "targets" {
		if t, ok := in["target"].(string); ok {
			ft, e := formatTarget(t)
			if e != "" {
				return schemaViolation(map[string]any{"target": e})
			}
			in["target"] = ft
		}
	}
	if k.name == "routes" {
		if e := routeSubschemaError(in["protocols"]); e != nil {
			return e
		}
	}
	return nil
}

// checkPluginConfig refuses a plugin not enabled and validates its config
// against the plugin's schema, filling defaults.
func (f *Fake) checkPluginConfig(ent map[string]any) *apiError {
	name := ent["name"].(string)
	schema, known := f.pluginSchema(name)
	if !known {
		return schemaViolation(map[string]any{"name": "plugin '" + name + "' not enabled; add it to the 'plugins' configuration property"})
	}
	cfg, _ := ent["config"].(map[string]any)
	if cfg == nil {
		cfg = map[string]any{}
	}
	if schema != nil {
		filled, cerrs := schema.Validate(cfg)
		if len(cerrs) > 0 {
			return schemaViolation(map[string]any{"config": cerrs})
		}
		cfg = filled
	}
	ent["config"] = cfg
	return nil
}

// checkForeignKeys refuses references to entities that do not exist.
func (f *Fake) checkForeignKeys(k *kindDef, ent map[string]any) *apiError {
	for _, fd := range k.fields {
		if fd.typ != "foreign" || ent[fd.name] == nil {
			continue
		}
		ref := ent[fd.name].(map[string]any)
		if _, ok := f.db[fd.reference][ref["id"].(string)]; !ok {
			return foreignKeyViolation(fd.name, fd.reference, ref)
		}
	}
	return nil
}

func (f *Fake) pluginSchema(name string) (PluginSchema, bool) {
	if name == "response-transformer" {
		return responseTransformer{renameJSON: f.minor() > 4}, true
	}
	s, ok := f.opts.Plugins[name]
	return s, ok
}

// routeSubschemaError is Schema:validate's first step for routes (their
// subschema key is "protocols"): when no protocol names a known subschema,
// Kong answers only "unknown type: <first>" and validates nothing else.
func routeSubschemaError(v any) *apiError {
	list, ok := v.([]any)
	if !ok || len(list) == 0 {
		return nil
	}
	for _, p := range list {
		if s, ok := p.(string); ok && contains(protocols, s) {
			return nil
		}
	}
	return schemaViolation(map[string]any{"protocols": fmt.Sprintf("unknown type: %v", list[0])})
}

// routeEntityCheck is routes_subschemas.lua's "must set one of" rule.
func routeEntityCheck(e map[string]any) string {
	set := func(n string) bool {
		switch v := e[n].(type) {
		case []any:
			return len(v) > 0
		case map[string]any:
			return len(v) > 0
		}
		return false
	}
	protos, _ := e["protocols"].([]any)
	httpish := false
	for _, p := range protos {
		if p == "http" || p == "https" {
			httpish = true
		}
	}
	if httpish && !set("methods") && !set("hosts") && !set("headers") && !set("paths") && !set("snis") {
		for _, p := range protos {
			if p == "https" {
				return "must set one of 'methods', 'hosts', 'headers', 'paths', 'snis' when 'protocols' is 'https'"
			}
		}
		return "must set one of 'methods', 'hosts', 'headers', 'paths' when 'protocols' is 'http'"
	}
	return ""
}

// formatTarget is targets.lua's format_target: default port 8000.
func formatTarget(t string) (string, string) {
	kind, host, port, e := hostKind(t)
	if e != "" {
		return "", "Invalid target ('" + t + "'); not a valid hostname or ip address"
	}
	if port == 0 {
		port = 8000
	}
	if kind == "ipv6" {
		return "[" + host + "]:" + strconv.Itoa(port), ""
	}
	return host + ":" + strconv.Itoa(port), ""
}

// unique enforces unique fields and Kong's cache-key uniqueness for targets
// and plugins through an index, so large configs stay fast. Called with
// f.mu held.
func (f *Fake) unique(k *kindDef, ent map[string]any) *apiError {
	id := ent["id"]
	for _, key := range uniqueKeys(k, ent) {
		other, ok := f.idx[k.name][key.key]
		if !ok || other == id {
			continue
		}
		return uniqueViolation(key.fields)
	}
	return nil
}

type uniqueKey struct {
	key    string
	fields map[string]any
}

func refID(v any) string {
	if m, ok := v.(map[string]any); ok {
		return fmt.Sprint(m["id"])
	}
	return ""
}

func uniqueKeys(k *kindDef, ent map[string]any) []uniqueKey {
	var out []uniqueKey
	for _, u := range k.uniques {
		if ent[u] != nil {
			out = append(out, uniqueKey{u + "=" + fmt.Sprint(ent[u]), map[string]any{u: ent[u]}})
		}
	}
	switch k.name {
	case "targets":
		out = append(out, uniqueKey{"target=" + refID(ent["upstream"]) + "|" + fmt.Sprint(ent["target"]),
			map[string]any{"upstream": ent["upstream"], "target": ent["target"]}})
	case "plugins":
		out = append(out, uniqueKey{"plugin=" + fmt.Sprint(ent["name"]) + "|" + refID(ent["service"]) + "|" + refID(ent["route"]) + "|" + refID(ent["consumer"]),
			map[string]any{"name": ent["name"], "service": ent["service"], "route": ent["route"], "consumer": ent["consumer"]}})
	}
	return out
}

// put stores an entity and indexes its unique keys. Called with f.mu held.
func (f *Fake) put(kind string, ent map[string]any) {
	id := ent["id"].(string)
	f.remove(kind, id)
	f.gen++
	f.db[kind][id] = ent
	for _, key := range uniqueKeys(kinds[kind], ent) {
		f.idx[kind][key.key] = id
	}
}

// remove deletes an entity and its index entries. Called with f.mu held.
func (f *Fake) remove(kind, id string) {
	old, ok := f.db[kind][id]
	if !ok {
		return
	}
	f.gen++
	for _, key := range uniqueKeys(kinds[kind], old) {
		if f.idx[kind][key.key] == id {
			delete(f.idx[kind], key.key)
		}
	}
	delete(f.db[kind], id)
}

// delete removes an entity: routes referencing a service block its delete
// (Kong's restrict), plugins and targets cascade.
func (f *Fake) delete(k *kindDef, id string) (int, any, *apiError) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if k.name == "services" {
		for _, rt := range f.db["routes"] {
			if ref, ok := rt["service"].(map[string]any); ok && ref["id"] == id {
				return 0, nil, &apiError{http.StatusBadRequest, map[string]any{"code": codeForeignKeyViolation, "name": "foreign key violation",
					"message": "an existing 'routes' entity references this 'services' entity", "fields": map[string]any{"@referenced_by": "routes"}}}
			}
		}
	}
	f.remove(k.name, id)
	for childKind, fk := range children[k.name] {
		for cid, c := range f.db[childKind] {
			if ref, ok := c[fk].(map[string]any); ok && ref["id"] == id && childKind != "routes" {
				f.remove(childKind, cid)
			}
		}
	}
	return http.StatusNoContent, nil, nil
}

// formBody decodes Kong's form encoding (a.b=c for nested records, repeated
// keys or a[]= for arrays), enough for curl and httpie --form.
func formBody(raw string) (map[string]any, *apiError) {
	vals, err := url.ParseQuery(raw)
	if err != nil {
		return nil, message(http.StatusBadRequest, "Cannot parse form body")
	}
	out := map[string]any{}
	for key, vs := range vals {
		key = strings.TrimSuffix(key, "[]")
		parts := strings.Split(key, ".")
		m := out
		for _, p := range parts[:len(parts)-1] {
			sub, ok := m[p].(map[string]any)
			if !ok {
				sub = map[string]any{}
				m[p] = sub
			}
			m = sub
		}
		last := parts[len(parts)-1]
		if len(vs) == 1 {
			m[last] = vs[0]
		} else {
			conv := make([]any, len(vs))
			for i, v := range vs {
				conv[i] = v
			}
			m[last] = conv
		}
	}
	return out, nil
}

// coerce infers form values' types from the schema like Kong's
// arguments.infer: strings to numbers and booleans, scalars to one-element
// arrays.
func coerce(fields []field, m map[string]any) {
	for _, fd := range fields {
		v, ok := m[fd.name]
		if !ok {
			continue
		}
		m[fd.name] = coerceValue(fd, v)
	}
}

func coerceValue(fd field, v any) any {
	switch fd.typ {
	case "integer", "number":
		if s, ok := v.(string); ok {
			if n, err := strconv.ParseFloat(s, 64); err == nil {
				return n
			}
		}
	case "boolean":
		if s, ok := v.(string); ok && (s == "true" || s == "false") {
			return s == "true"
		}
	case "array", "set":
		if s, ok := v.(string); ok {
			v = []any{s}
		}
		if arr, ok := v.([]any); ok && fd.elem != nil {
			for i, e := range arr {
				arr[i] = coerceValue(*fd.elem, e)
			}
		}
		return v
	case "record":
		if sub, ok := v.(map[string]any); ok {
			coerce(fd.fields, sub)
		}
	}
	return v
}

// byTag serves /tags/{tag}: one row per entity carrying the tag, paged.
func (f *Fake) byTag(r *http.Request, tag string) (int, any, *apiError) {
	q := r.URL.Query()
	size := 100
	if s := q.Get("size"); s != "" {
		n, err := strconv.Atoi(s)
		if err != nil || n < 1 || n > 1000 {
			return 0, nil, &apiError{http.StatusBadRequest, map[string]any{"code": codeInvalidSize, "name": "invalid size", "message": "size must be an integer between 1 and 1000"}}
		}
		size = n
	}
	start := ""
	if o := q.Get("offset"); o != "" {
		b, err := base64.RawURLEncoding.DecodeString(o)
		if err != nil {
			return 0, nil, &apiError{http.StatusBadRequest, map[string]any{"code": codeInvalidOffset, "name": "invalid offset", "message": "'" + o + "' is not a valid offset: bad base64 encoding"}}
		}
		start = string(b)
	}
	f.mu.Lock()
	all := f.tagRows(tag)
	f.mu.Unlock()
	i := sort.Search(len(all), func(i int) bool { return all[i].key() >= start })
	rows := all[i:]
	body := map[string]any{"next": nil}
	if len(rows) > size {
		next := base64.RawURLEncoding.EncodeToString([]byte(rows[size].key()))
		body["offset"] = next
		body["next"] = "/tags/" + url.PathEscape(tag) + "?offset=" + url.QueryEscape(next)
		rows = rows[:size]
	}
	data := make([]any, len(rows))
	for i, rw := range rows {
		data[i] = map[string]any{"entity_name": rw.kind, "entity_id": rw.id, "tag": tag}
	}
	body["data"] = data
	if len(data) == 0 {
		body["data"] = f.emptyTagData()
	}
	return http.StatusOK, body, nil
}

type tagRow struct{ kind, id string }

func (r tagRow) key() string { return r.kind + "/" + r.id }

// tagRows lists the entities carrying tag in (kind, id) order, cached until
// the next write so paging through /tags stays O(page). Called with f.mu held.
func (f *Fake) tagRows(tag string) []tagRow {
	if c, ok := f.tagCache[tag]; ok && c.gen == f.gen {
		return c.rows
	}
	var rows []tagRow
	for kind, ents := range f.db {
		for id, e := range ents {
			if matchTags(e, []string{tag}, true) {
				rows = append(rows, tagRow{kind, id})
			}
		}
	}
	sort.Slice(rows, func(i, j int) bool {
		if rows[i].kind != rows[j].kind {
			return rows[i].kind < rows[j].kind
		}
		return rows[i].id < rows[j].id
	})
	f.tagCache[tag] = tagCacheEntry{gen: f.gen, rows: rows}
	return rows
}

type tagCacheEntry struct {
	gen  int64
	rows []tagRow
}
