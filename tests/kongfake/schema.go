package kongfake

import (
	"encoding/json"
	"fmt"
	"math"
	"net"
	"regexp"
	"strconv"
	"strings"
)

// field is the subset of Kong's schema language the five entity kinds use.
type field struct {
	name      string
	typ       string // string integer number boolean array set record map foreign
	def       any    // default, JSON-shaped (nil: null)
	required  bool
	oneOf     []string
	between   *[2]float64
	validate  func(string) string // custom validator for strings; "" means ok
	elem      *field              // element of array/set
	fields    []field             // record fields
	reference string              // foreign: the referenced kind
	auto      bool                // id / timestamps, filled by the fake
}

// protocols are Kong OSS 3.9's (kong/constants.lua).
var protocols = []string{"grpc", "grpcs", "http", "https", "tcp", "tls", "tls_passthrough", "udp"}

func rng(lo, hi float64) *[2]float64 { return &[2]float64{lo, hi} }

func strField(name string) field { return field{name: name, typ: "string"} }

func tagsField() field {
	return field{name: "tags", typ: "set", elem: &field{typ: "string", validate: validateTag}}
}

var (
	nameRe = regexp.MustCompile(`^[A-Za-z0-9.\-_~\x80-\xf4]+$`)
	pathRe = regexp.MustCompile(`^/[A-Za-z0-9.\-_~/%:@!$&'()*+,;=]*$`)
	hostRe = regexp.MustCompile(`^[A-Za-z0-9\-._]+$`)
)

func validateUTF8Name(s string) string {
	if !nameRe.MatchString(s) {
		return fmt.Sprintf("invalid value '%s': the only accepted ascii characters are alphanumerics or ., -, _, and ~", s)
	}
	return ""
}

func validateTag(s string) string {
	for i := 0; i < len(s); i++ {
		c := s[i]
		if c < 32 || c == 44 || c == 47 || c == 127 || c > 244 {
			return fmt.Sprintf("invalid tag '%s': expected printable ascii (except `,` and `/`) or valid utf-8 sequences", s)
		}
	}
	if s == "" {
		return "length must be at least 1"
	}
	return ""
}

func validatePath(s string) string {
	if !strings.HasPrefix(s, "/") {
		return "should start with: /"
	}
	if !pathRe.MatchString(s) {
		return fmt.Sprintf("invalid path: '%s' (characters outside of the reserved list of RFC 3986 found)", s)
	}
	return ""
}

// hostKind mirrors kong.tools.ip: ipv4, ipv6 or name, with Kong's hostname
// check for names. It returns the host without port, the port (0 if none) and
// an error text.
func hostKind(s string) (kind, host string, port int, errText string) {
	if strings.Count(s, ":") > 1 || strings.HasPrefix(s, "[") {
		h, p, err := net.SplitHostPort(s)
		if err != nil {
			h = strings.Trim(s, "[]")
		} else if port, err = strconv.Atoi(p); err != nil {
			return "", "", 0, "invalid value: " + s
		}
		if net.ParseIP(h) == nil {
			return "", "", 0, "invalid value: " + s
		}
		return "ipv6", h, port, ""
	}
	host = s
	if i := strings.LastIndexByte(s, ':'); i >= 0 {
		p, err := strconv.Atoi(s[i+1:])
		if err != nil {
			return "", "", 0, "invalid value: " + s
		}
		if p > 65535 {
			return "", "", 0, "invalid port number"
		}
		host, port = s[:i], p
	}
	if regexp.MustCompile(`^[\d.]+$`).MatchString(host) {
		if net.ParseIP(host) == nil {
			return "", "", 0, "invalid value: " + s
		}
		return "ipv4", host, port, ""
	}
	if !hostRe.MatchString(host) {
		return "", "", 0, "invalid value: " + s
	}
	labels := strings.Split(host, ".")
	for i, l := range labels {
		if strings.HasSuffix(l, "-") || (l == "" && i != len(labels)-1) {
			return "", "", 0, "invalid value: " + s
		}
	}
	return "name", host, port, ""
}

func validateHost(s string) string {
	_, _, port, e := hostKind(s)
	if e == "invalid port number" || port != 0 {
		return "must not have a port"
	}
	return e
}

// validateWildcardHost is typedefs.hosts' element rules in Kong's validator
// order: match_all (at most one '*'), match_any (a whole leftmost or
// rightmost label), then the custom validator.
func validateWildcardHost(s string) string {
	if strings.Count(s, "*") > 1 {
		return "invalid wildcard: must have at most one wildcard"
	}
	if strings.Contains(s, "*") && !strings.HasPrefix(s, "*.") && !strings.HasSuffix(s, ".*") {
		return "invalid wildcard: must be placed at leftmost or rightmost label"
	}
	if i := strings.IndexByte(s, '*'); i >= 0 {
		if i != 0 && i != len(s)-1 {
			return "wildcard must be leftmost or rightmost character"
		}
		if strings.Count(s, "*") > 1 {
			return "only one wildcard must be specified"
		}
		s = strings.Replace(s, "*", "wildcard", 1)
	}
	kind, _, port, e := hostKind(s)
	if e != "" && e != "invalid port number" {
		return "invalid value: " + s
	}
	if kind != "name" {
		return "must not be an IP"
	}
	if e == "invalid port number" || port != 0 {
		return "must not have a port"
	}
	return ""
}

func validateUpstreamName(s string) string {
	kind, _, port, e := hostKind(s)
	switch {
	case e != "":
		return fmt.Sprintf("Invalid name ('%s'); must be a valid hostname", s)
	case kind != "name":
		return fmt.Sprintf("Invalid name ('%s'); no ip addresses allowed", s)
	case port != 0:
		return fmt.Sprintf("Invalid name ('%s'); no port allowed", s)
	}
	return ""
}

func httpStatuses(def ...int) field {
	d := make([]any, len(def))
	for i, v := range def {
		d[i] = float64(v)
	}
	return field{typ: "array", def: d, elem: &field{typ: "integer", between: rng(100, 999)}}
}

func named(f field, name string) field { f.name = name; return f }

func healthchecksField() field {
	sec := func(name string, def float64) field {
		return field{name: name, typ: "number", def: def, between: rng(0, 65535)}
	}
	b := func(name string) field { return field{name: name, typ: "integer", def: 0.0, between: rng(0, 255)} }
	ctype := field{name: "type", typ: "string", def: "http", oneOf: []string{"tcp", "http", "https", "grpc", "grpcs"}}
	return field{name: "healthchecks", typ: "record", fields: []field{
		{name: "active", typ: "record", fields: []field{
			ctype,
			sec("timeout", 1),
			{name: "concurrency", typ: "integer", def: 10.0, between: rng(1, math.Pow(2, 31))},
			{name: "http_path", typ: "string", def: "/", validate: validatePath},
			{name: "https_sni", typ: "string"},
			{name: "https_verify_certificate", typ: "boolean", def: true, required: true},
			{name: "headers", typ: "map"},
			{name: "healthy", typ: "record", fields: []field{
				sec("interval", 0), named(httpStatuses(200, 302), "http_statuses"), b("successes"),
			}},
			{name: "unhealthy", typ: "record", fields: []field{
				sec("interval", 0), named(httpStatuses(429, 404, 500, 501, 502, 503, 504, 505), "http_statuses"),
				b("tcp_failures"), b("timeouts"), b("http_failures"),
			}},
		}},
		{name: "passive", typ: "record", fields: []field{
			ctype,
			{name: "healthy", typ: "record", fields: []field{
				named(httpStatuses(200, 201, 202, 203, 204, 205, 206, 207, 208, 226, 300, 301, 302, 303, 304, 305, 306, 307, 308), "http_statuses"),
				b("successes"),
			}},
			{name: "unhealthy", typ: "record", fields: []field{
				named(httpStatuses(429, 500, 503), "http_statuses"),
				b("tcp_failures"), b("timeouts"), b("http_failures"),
			}},
		}},
		{name: "threshold", typ: "number", def: 0.0, between: rng(0, 100)},
	}}
}

func common() []field {
	return []field{
		{name: "id", typ: "string", auto: true},
		{name: "created_at", typ: "integer", auto: true},
		{name: "updated_at", typ: "integer", auto: true},
		tagsField(),
	}
}

func timeout(name string) field {
	return field{name: name, typ: "integer", def: 60000.0, between: rng(1, math.Pow(2, 31)-2)}
}

var serviceFields = append(common(),
	field{name: "name", typ: "string", validate: validateUTF8Name},
	field{name: "retries", typ: "integer", def: 5.0, between: rng(0, 32767)},
	field{name: "protocol", typ: "string", def: "http", required: true, oneOf: protocols},
	field{name: "host", typ: "string", required: true, validate: validateHost},
	field{name: "port", typ: "integer", def: 80.0, required: true, between: rng(0, 65535)},
	field{name: "path", typ: "string", validate: validatePath},
	timeout("connect_timeout"), timeout("write_timeout"), timeout("read_timeout"),
	field{name: "client_certificate", typ: "foreign", reference: "certificates"},
	field{name: "tls_verify", typ: "boolean"},
	field{name: "tls_verify_depth", typ: "integer", between: rng(0, 64)},
	field{name: "ca_certificates", typ: "array", elem: &field{typ: "string"}},
	field{name: "enabled", typ: "boolean", def: true, required: true},
)

var routeFields = append(common(),
	field{name: "name", typ: "string", validate: validateUTF8Name},
	field{name: "protocols", typ: "set", def: []any{"http", "https"}, required: true, elem: &field{typ: "string", oneOf: protocols}},
	field{name: "methods", typ: "set", elem: &field{typ: "string"}},
	field{name: "hosts", typ: "array", elem: &field{typ: "string", validate: validateWildcardHost}},
	field{name: "paths", typ: "array", elem: &field{typ: "string", validate: validateRouterPath}},
	field{name: "headers", typ: "map"},
	field{name: "https_redirect_status_code", typ: "integer", def: 426.0, required: true, oneOf: []string{"426", "301", "302", "307", "308"}},
	field{name: "regex_priority", typ: "integer", def: 0.0},
	field{name: "strip_path", typ: "boolean", def: true, required: true},
	field{name: "path_handling", typ: "string", def: "v0", oneOf: []string{"v0", "v1"}},
	field{name: "preserve_host", typ: "boolean", def: false, required: true},
	field{name: "request_buffering", typ: "boolean", def: true, required: true},
	field{name: "response_buffering", typ: "boolean", def: true, required: true},
	field{name: "snis", typ: "set", elem: &field{typ: "string"}},
	field{name: "sources", typ: "set", elem: &field{typ: "record"}},
	field{name: "destinations", typ: "set", elem: &field{typ: "record"}},
	field{name: "service", typ: "foreign", reference: "services"},
)

var upstreamFields = append(common(),
	field{name: "name", typ: "string", required: true, validate: validateUpstreamName},
	field{name: "algorithm", typ: "string", def: "round-robin", oneOf: []string{"consistent-hashing", "least-connections", "round-robin", "latency"}},
	field{name: "hash_on", typ: "string", def: "none", oneOf: []string{"none", "consumer", "ip", "header", "cookie", "path", "query_arg", "uri_capture"}},
	field{name: "hash_fallback", typ: "string", def: "none", oneOf: []string{"none", "consumer", "ip", "header", "cookie", "path", "query_arg", "uri_capture"}},
	strField("hash_on_header"), strField("hash_fallback_header"), strField("hash_on_cookie"),
	field{name: "hash_on_cookie_path", typ: "string", def: "/", validate: validatePath},
	strField("hash_on_query_arg"), strField("hash_fallback_query_arg"),
	strField("hash_on_uri_capture"), strField("hash_fallback_uri_capture"),
	field{name: "slots", typ: "integer", def: 10000.0, between: rng(10, 65536)},
	healthchecksField(),
	field{name: "host_header", typ: "string", validate: validateHost},
	field{name: "client_certificate", typ: "foreign", reference: "certificates"},
	field{name: "use_srv_name", typ: "boolean", def: false},
)

var targetFields = append(common(),
	field{name: "upstream", typ: "foreign", reference: "upstreams", required: true},
	field{name: "target", typ: "string", required: true},
	field{name: "weight", typ: "integer", def: 100.0, between: rng(0, 65535)},
)

var pluginFields = append(common(),
	field{name: "name", typ: "string", required: true},
	field{name: "instance_name", typ: "string", validate: validateUTF8Name},
	field{name: "service", typ: "foreign", reference: "services"},
	field{name: "route", typ: "foreign", reference: "routes"},
	field{name: "consumer", typ: "foreign", reference: "consumers"},
	field{name: "config", typ: "config"},
	field{name: "protocols", typ: "set", def: []any{"grpc", "grpcs", "http", "https"}, required: true, elem: &field{typ: "string", oneOf: protocols}},
	field{name: "enabled", typ: "boolean", def: true, required: true},
)

var consumerFields = append(common(),
	field{name: "username", typ: "string"},
	field{name: "custom_id", typ: "string"},
)

// check validates v against f and returns the value with defaults filled in,
// or Kong's error for that field (a string or a nested map/array).
func (f field) check(v any, fill bool) (any, any) {
	if v == nil {
		return f.checkMissing(fill)
	}
	switch f.typ {
	case "string":
		return f.checkString(v)
	case "integer", "number":
		return f.checkNumber(v)
	case "boolean":
		if _, ok := v.(bool); !ok {
			return nil, "expected a boolean"
		}
		return v, nil
	case "array", "set":
		return f.checkList(v, fill)
	case "map":
		m, ok := v.(map[string]any)
		if !ok {
			return nil, "expected a map"
		}
		return m, nil
	case "record":
		m, ok := v.(map[string]any)
		if !ok {
			return nil, "expected a record"
		}
		if len(f.fields) == 0 {
			return m, nil
		}
		return f.checkRecord(m, fill)
	case "foreign":
		return checkForeign(v)
	case "config":
		m, ok := v.(map[string]any)
		if !ok {
			return nil, "expected a record"
		}
		return m, nil
	}
	return v, nil
}

// checkMissing is check of an absent (null) value: the default, a record
// of defaults, or "required field missing".
func (f field) checkMissing(fill bool) (any, any) {
	if f.def != nil && fill {
		return clone(f.def), nil
	}
	if f.typ == "record" && len(f.fields) > 0 && fill {
		return f.checkRecord(map[string]any{}, true)
	}
	if f.required && !f.auto {
		return nil, "required field missing"
	}
	return nil, nil
}

func (f field) checkString(v any) (any, any) {
	s, ok := v.(string)
	if !ok {
		return nil, "expected a string"
	}
	if s == "" {
		return nil, "length must be at least 1"
	}
	if len(f.oneOf) > 0 && !contains(f.oneOf, s) {
		return nil, "expected one of: " + strings.Join(f.oneOf, ", ")
	}
	if f.validate != nil {
		if e := f.validate(s); e != "" {
			return nil, e
		}
	}
	return s, nil
}

func (f field) checkNumber(v any) (any, any) {
	n, ok := v.(float64)
	if !ok {
		if f.typ == "integer" {
			return nil, "expected an integer"
		}
		return nil, "expected a number"
	}
	if f.typ == "integer" && n != math.Trunc(n) {
		return nil, "expected an integer"
	}
	if f.between != nil && (n < f.between[0] || n > f.between[1]) {
		return nil, fmt.Sprintf("value should be between %s and %s", num(f.between[0]), num(f.between[1]))
	}
	if len(f.oneOf) > 0 && !contains(f.oneOf, num(n)) {
		return nil, "expected one of: " + strings.Join(f.oneOf, ", ")
	}
	return n, nil
}

// checkList checks an array or a set element by element; a set drops
// repeated values.
func (f field) checkList(v any, fill bool) (any, any) {
	arr, ok := v.([]any)
	if !ok {
		// Kong's JSON decoder turns an empty object into an empty table.
		if m, isMap := v.(map[string]any); isMap && len(m) == 0 {
			return []any{}, nil
		}
		if f.typ == "set" {
			return nil, "expected a set"
		}
		return nil, "expected an array"
	}
	out := make([]any, 0, len(arr))
	var errs []any
	failed := false
	for _, e := range arr {
		var ev, ee any = e, nil
		if f.elem != nil {
			ev, ee = f.elem.check(e, fill)
		}
		errs = append(errs, ee)
		if ee != nil {
			failed = true
		}
		if f.typ == "set" && containsAny(out, ev) {
			continue
		}
		out = append(out, ev)
	}
	if failed {
		return nil, errs
	}
	return out, nil
}

func checkForeign(v any) (any, any) {
	m, ok := v.(map[string]any)
	if !ok {
		return nil, "expected a record"
	}
	id, ok := m["id"].(string)
	if !ok || !isUUID(id) {
		// Kong accepts a foreign key by endpoint key in the Admin API;
		// the fake resolves names before validation.
		return nil, map[string]any{"id": "expected a valid UUID"}
	}
	return map[string]any{"id": id}, nil
}

func (f field) checkRecord(m map[string]any, fill bool) (any, any) {
	out := map[string]any{}
	errs := map[string]any{}
	for k := range m {
		if !f.has(k) {
			errs[k] = "unknown field"
		}
	}
	for _, sub := range f.fields {
		v, e := sub.check(m[sub.name], fill)
		if e != nil {
			errs[sub.name] = e
			continue
		}
		// The Admin API shows unset fields as null (nulls = true).
		out[sub.name] = v
	}
	if len(errs) > 0 {
		return nil, errs
	}
	return out, nil
}

func (f field) has(name string) bool {
	for _, s := range f.fields {
		if s.name == name {
			return true
		}
	}
	return false
}

func num(f float64) string { return strconv.FormatFloat(f, 'f', -1, 64) }

func contains(list []string, s string) bool {
	for _, x := range list {
		if x == s {
			return true
		}
	}
	return false
}

func containsAny(list []any, v any) bool {
	b, _ := json.Marshal(v)
	for _, x := range list {
		xb, _ := json.Marshal(x)
		if string(xb) == string(b) {
			return true
		}
	}
	return false
}

var uuidRe = regexp.MustCompile(`^[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}$`)

func isUUID(s string) bool { return uuidRe.MatchString(s) }

// clone deep-copies a JSON-shaped value.
func clone(v any) any {
	switch x := v.(type) {
	case map[string]any:
		m := make(map[string]any, len(x))
		for k, e := range x {
			m[k] = clone(e)
		}
		return m
	case []any:
		a := make([]any, len(x))
		for i, e := range x {
			a[i] = clone(e)
		}
		return a
	}
	return v
}
