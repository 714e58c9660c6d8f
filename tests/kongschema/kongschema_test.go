package kongschema

import (
	"encoding/json"
	"os"
	"reflect"
	"strings"
	"testing"
)

func loadPlugin(t *testing.T) *Plugin {
	t.Helper()
	b, err := os.ReadFile("testdata/dump.json")
	if err != nil {
		t.Fatal(err)
	}
	p, err := ParseDump(b)
	if err != nil {
		t.Fatalf("ParseDump: %v", err)
	}
	return p
}

// j decodes a JSON literal the way the Admin API's cjson would hand it over.
func j(t *testing.T, s string) map[string]any {
	t.Helper()
	var m map[string]any
	if err := json.Unmarshal([]byte(s), &m); err != nil {
		t.Fatalf("bad test JSON %s: %v", s, err)
	}
	return m
}

func TestParseDump(t *testing.T) {
	p := loadPlugin(t)
	if p.Name != "service-registry" || p.Priority != 1000 || p.Version != "0.1.0" || p.Protocol != "ProtoBuf:1" {
		t.Fatalf("plugin info = %+v", p)
	}
	if !reflect.DeepEqual(p.Phases, []string{"access", "log"}) {
		t.Fatalf("phases = %v", p.Phases)
	}
	// entity.lua make_records_required: "Make records in Entities required by default".
	if !p.Config.Required {
		t.Fatal("config record not required")
	}
	for _, nf := range p.Config.Fields {
		if nf.Field.Type == "record" && !nf.Field.Required {
			t.Fatalf("nested record %s not required", nf.Name)
		}
	}
}

func TestParseDumpRefusesWhatItCannotCheck(t *testing.T) {
	cases := map[string]string{
		"match":             `{"a":{"type":"string","match":"^x"}}`,
		"entity checks":     ``,
		"json type":         `{"a":{"type":"json"}}`,
		"array no elements": `{"a":{"type":"array"}}`,
		"bogus attr":        `{"a":{"type":"string","frobnicate":true}}`,
	}
	for name, field := range cases {
		t.Run(name, func(t *testing.T) {
			extra := ""
			fields := `[` + field + `]`
			if field == "" {
				fields = `[]`
				extra = `,"entity_checks":[{"at_least_one_of":["a"]}]`
			}
			dump := `{"Protocol":"ProtoBuf:1","Plugins":[{"Name":"p","Schema":{"name":"p","fields":[{"config":{"type":"record","fields":` + fields + `}}]` + extra + `}}]}`
			if _, err := ParseDump([]byte(dump)); err == nil {
				t.Fatal("ParseDump accepted a schema it cannot validate faithfully")
			}
		})
	}
}

// The go-pdk dump as go-pdk v0.11.2 prints it (no validators at all) must load too.
func TestParseDumpPlainGoPDK(t *testing.T) {
	dump := `{"Protocol":"ProtoBuf:1","SocketPath":"/x.socket","Plugins":[{"Name":"p","Phases":["access"],"Version":"1","Priority":5,"Schema":{"name":"p","fields":[{"config":{"type":"record","fields":[{"message":{"type":"string"}},{"n":{"type":"integer"}},{"sub":{"type":"record","fields":[{"x":{"type":"boolean"}}]}},{"l":{"type":"array","elements":{"type":"number"}}},{"m":{"type":"map","keys":{"type":"string"},"values":{"type":"integer"}}}]}}]}}]}`
	p, err := ParseDump([]byte(dump))
	if err != nil {
		t.Fatal(err)
	}
	filled, errs := p.Validate(map[string]any{})
	if errs != nil {
		t.Fatalf("errs = %v", errs)
	}
	want := map[string]any{"message": nil, "n": nil, "sub": map[string]any{"x": nil}, "l": nil, "m": nil}
	if !reflect.DeepEqual(filled, want) {
		t.Fatalf("filled = %#v", filled)
	}
	if got := p.ForPlugin(filled); !reflect.DeepEqual(got, map[string]any{"sub": map[string]any{}}) {
		t.Fatalf("ForPlugin = %#v, want unset record as {} and no nulls", got)
	}
}

func TestValidateErrors(t *testing.T) {
	p := loadPlugin(t)
	cases := []struct {
		name string
		in   string
		want string
	}{
		// validate_fields: resolve_field → validation_errors.UNKNOWN = "unknown field"
		{"unknown field", `{"bogus":1}`, `{"bogus":"unknown field"}`},
		{"unknown nested field", `{"redis":{"bogus":true}}`, `{"redis":{"bogus":"unknown field"}}`},
		// validate_field: `if type(value) ~= "string" then return nil, validation_errors.STRING`
		{"string type", `{"service":5}`, `{"service":"expected a string"}`},
		// integer: `value == floor(value)` else validation_errors.INTEGER
		{"integer type", `{"cache_ttl_ms":"5"}`, `{"cache_ttl_ms":"expected an integer"}`},
		{"integer fraction", `{"cache_ttl_ms":1.5}`, `{"cache_ttl_ms":"expected an integer"}`},
		// valid_types branch: `validation_errors[field.type:upper()]` → NUMBER / BOOLEAN
		{"number type", `{"weight_factor":"x"}`, `{"weight_factor":"expected a number"}`},
		{"boolean type", `{"redis":{"ssl":"yes"}}`, `{"redis":{"ssl":"expected a boolean"}}`},
		// array: `if not is_sequence(value) then return nil, validation_errors.ARRAY`
		{"array type", `{"tags":"a"}`, `{"tags":"expected an array"}`},
		{"array object", `{"tags":{"a":1}}`, `{"tags":"expected an array"}`},
		// set: validation_errors.SET
		{"set type", `{"rate_limit":{"failure_statuses":5}}`, `{"rate_limit":{"failure_statuses":"expected a set"}}`},
		// map: `if type(value) ~= "table" then return nil, validation_errors.MAP`
		{"map type", `{"headers":"x"}`, `{"headers":"expected a map"}`},
		// record: `if type(value) ~= "table" then return nil, validation_errors.RECORD`
		{"record type", `{"redis":"localhost"}`, `{"redis":"expected a record"}`},
		// string: `if not field.len_min then field.len_min = 1 end` → LEN_MIN "length must be at least %d"
		{"empty string", `{"service":""}`, `{"service":"length must be at least 1"}`},
		// one_of → ONE_OF "expected one of: %s" with concat(options, ", ")
		{"one_of", `{"registry":"bogus"}`, `{"registry":"expected one of: kong, redis"}`},
		// validators_order puts one_of before len_min: "" fails one_of first.
		{"one_of before len_min", `{"registry":""}`, `{"registry":"expected one of: kong, redis"}`},
		// between → BETWEEN "value should be between %d and %d"
		{"between", `{"redis":{"port":70000}}`, `{"redis":{"port":"value should be between 1 and 65535"}}`},
		{"between number", `{"weight_factor":1.5}`, `{"weight_factor":"value should be between 0 and 1"}`},
		// gt → GT "value must be greater than %s"
		{"gt", `{"cache_ttl_ms":0}`, `{"cache_ttl_ms":"value must be greater than 0"}`},
		// REQUIRED "required field missing": Schema:validate `field.required and input[name] == null`
		{"required null", `{"secret":null}`, `{"secret":"required field missing"}`},
		// a record set to null is not expanded (should_recurse_record) and records are required
		{"record null", `{"redis":null}`, `{"redis":"required field missing"}`},
		// validate_elements: errs[i] = err; cjson prints {[2]=...} as [null, ...]
		{"array element", `{"redis":{"cluster_nodes":["a:1",5]}}`, `{"redis":{"cluster_nodes":[null,"expected a string"]}}`},
		{"array element empty", `{"tags":[""]}`, `{"tags":["length must be at least 1"]}`},
		// validate_elements sets field.elements.required = true: a null element is missing
		{"array null element", `{"tags":["a",null]}`, `{"tags":[null,"required field missing"]}`},
		{"record in array", `{"redis":{"sentinel_nodes":[{"host":"a"},{"port":1}]}}`,
			`{"redis":{"sentinel_nodes":[null,{"host":"required field missing"}]}}`},
		{"record in array bad port", `{"redis":{"sentinel_nodes":[{"host":"a","port":0}]}}`,
			`{"redis":{"sentinel_nodes":[{"port":"value should be between 1 and 65535"}]}}`},
		{"set element", `{"rate_limit":{"failure_statuses":[700]}}`, `{"rate_limit":{"failure_statuses":["value should be between 100 and 599"]}}`},
		// map: keys and values validated with required = true; first error is returned
		{"map value type", `{"headers":{"X-A":1}}`, `{"headers":"expected a string"}`},
		{"map empty key", `{"headers":{"":"v"}}`, `{"headers":"length must be at least 1"}`},
		{"map null value", `{"headers":{"a":null}}`, `{"headers":"required field missing"}`},
		// The seed's KONG-FACTS example, exactly as a real Kong printed it under "config".
		{"kong facts example", `{"registry":"bogus","redis":{"port":70000}}`,
			`{"registry":"expected one of: kong, redis","redis":{"port":"value should be between 1 and 65535"}}`},
		{"several", `{"bogus":1,"rate_limit":{"limit_by":"x","requests_per_min":-1}}`,
			`{"bogus":"unknown field","rate_limit":{"limit_by":"expected one of: service, route, ip, consumer, header","requests_per_min":"value must be greater than 0"}}`},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			filled, errs := p.Validate(j(t, c.in))
			if errs == nil {
				t.Fatalf("accepted %s: %v", c.in, filled)
			}
			got, _ := json.Marshal(errs)
			var a, b any
			_ = json.Unmarshal(got, &a)
			_ = json.Unmarshal([]byte(c.want), &b)
			if !reflect.DeepEqual(a, b) {
				t.Fatalf("errs = %s\nwant   %s", got, c.want)
			}
		})
	}
}

func TestValidateGood(t *testing.T) {
	p := loadPlugin(t)
	defaults := `{"registry":"kong","service":null,"cache_ttl_ms":1000,"weight_factor":null,
	  "redis":{"host":"127.0.0.1","port":6379,"password":null,"ssl":false,"timeout_ms":20,"cluster_nodes":null,"sentinel_nodes":null},
	  "rate_limit":{"enabled":false,"requests_per_min":null,"limit_by":"service","failure_statuses":[500,502,503]},
	  "headers":null,"tags":[],"secret":"x"}`
	cases := []struct {
		name, in, filled, plugin string
	}{
		// The seed: `POST /plugins name=service-registry config.registry=kong`, which the
		// Admin API decodes from the form into {"config":{"registry":"kong"}}.
		{"seed registry=kong", `{"registry":"kong"}`, defaults,
			`{"registry":"kong","cache_ttl_ms":1000,"redis":{"host":"127.0.0.1","port":6379,"ssl":false,"timeout_ms":20},
			  "rate_limit":{"enabled":false,"limit_by":"service","failure_statuses":[500,502,503]},"tags":[],"secret":"x"}`},
		// handle_missing_field: defaults, and a required record expands to its nested defaults.
		{"empty config", `{}`, defaults, ""},
		// config absent altogether (nil) is filled the same way.
		{"nil config", ``, defaults, ""},
		// An explicit null keeps null: adjust_field_for_context only fills nil, not ngx.null.
		{"null keeps null", `{"redis":{"port":null}}`, strings.Replace(defaults, `"port":6379`, `"port":null`, 1), ""},
		// cjson decodes [] and {} to the same empty table: an empty object is a valid array.
		{"empty object as array", `{"tags":{}}`, strings.Replace(defaults, `"tags":[]`, `"tags":[]`, 1), ""},
		// make_set removes duplicates.
		{"set dedupe", `{"rate_limit":{"failure_statuses":[500,500,503]}}`, strings.Replace(defaults, `[500,502,503]`, `[500,503]`, 1), ""},
		// defaults inside records inside arrays
		{"record in array defaults", `{"redis":{"sentinel_nodes":[{"host":"s1"}]}}`,
			strings.Replace(defaults, `"sentinel_nodes":null`, `"sentinel_nodes":[{"host":"s1","port":26379}]`, 1), ""},
		// unvalidated_fields: "updated_at" is never checked (and not sent to the plugin).
		{"updated_at ignored", `{"updated_at":5}`, strings.Replace(defaults, `"secret":"x"`, `"secret":"x","updated_at":5`, 1), ""},
		{"map ok", `{"headers":{"X-A":"1"}}`, strings.Replace(defaults, `"headers":null`, `"headers":{"X-A":"1"}`, 1), ""},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			var in map[string]any
			if c.in != "" {
				in = j(t, c.in)
			}
			filled, errs := p.Validate(in)
			if errs != nil {
				t.Fatalf("errs = %v", errs)
			}
			if want := j(t, c.filled); !reflect.DeepEqual(filled, want) {
				g, _ := json.Marshal(filled)
				t.Fatalf("filled = %s\nwant     %s", g, c.filled)
			}
			if c.plugin != "" {
				if got, want := p.ForPlugin(filled), j(t, c.plugin); !reflect.DeepEqual(got, want) {
					g, _ := json.Marshal(got)
					t.Fatalf("ForPlugin = %s\nwant        %s", g, c.plugin)
				}
			}
		})
	}
}

// Validate must not change the caller's map (Kong works on a deep copy).
func TestValidateDoesNotMutateInput(t *testing.T) {
	p := loadPlugin(t)
	in := map[string]any{"redis": map[string]any{"port": 1}}
	p.Validate(in)
	if !reflect.DeepEqual(in, map[string]any{"redis": map[string]any{"port": 1}}) {
		t.Fatalf("input changed: %v", in)
	}
}

// Go callers may pass ints (e.g. decoded from a form): they are numbers to Kong.
func TestValidateGoInts(t *testing.T) {
	p := loadPlugin(t)
	filled, errs := p.Validate(map[string]any{"redis": map[string]any{"port": 6380}, "cache_ttl_ms": int64(5)})
	if errs != nil {
		t.Fatal(errs)
	}
	if filled["redis"].(map[string]any)["port"] != float64(6380) {
		t.Fatalf("port = %#v", filled["redis"])
	}
}
