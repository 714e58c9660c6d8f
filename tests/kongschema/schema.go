package kongschema

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"sort"
)

// Plugin is one entry of a plugin server's -dump, as Kong's process.lua reads it:
// Kong takes Plugins[0] and uses Name, Priority, Version, Schema and Phases.
type Plugin struct {
	Name     string
	Phases   []string
	Version  string
	Priority int
	// Protocol is the dump's top-level protocol ("ProtoBuf:1" for go-pdk).
	Protocol string
	// Schema is the raw schema object, for callers that print it back
	// (GET /schemas/plugins/<name>).
	Schema map[string]any
	// Config is the parsed definition of the "config" field.
	Config *Field
}

// NamedField keeps a record's fields in declaration order, as Kong's
// each_field does.
type NamedField struct {
	Name  string
	Field *Field
}

// Field is one Kong schema field definition with the attributes this package
// honours.
type Field struct {
	Type     string
	Required bool
	// HasDefault distinguishes "no default" from "default: null".
	HasDefault bool
	Default    any

	Fields   []NamedField // record
	Elements *Field       // array, set
	Keys     *Field       // map
	Values   *Field       // map

	HasEq, HasNe       bool
	Eq, Ne             any
	OneOf, NotOneOf    []any
	Gt                 *float64
	Between            []float64
	LenEq, LenMin      *int
	LenMax             *int
	StartsWith         *string
	HasContains        bool
	Contains           any
	UUID, Timestamp    bool
	Err                string // "err": overrides the message of a failed validator
	requiredWasPresent bool
}

// Attributes Kong knows that do not change what validation accepts (documentation,
// storage, UI hints) or that only matter for other entity kinds.
var inertAttributes = map[string]bool{
	"description": true, "referenceable": true, "encrypted": true, "auto": true,
	"unique": true, "immutable": true, "examples": true, "deprecation": true,
	"translate_backwards": true, "indexed": true, "on_delete": true,
	"legacy": true, "nilable": true, "ttl": true,
	"unique_across_ws": true, "shorthand": true,
}

// Attributes that change validation and are not implemented: refusing them keeps
// the validator honest instead of silently more permissive than Kong.
var unsupportedAttributes = map[string]bool{
	"match": true, "not_match": true, "match_all": true, "match_none": true,
	"match_any": true, "is_regex": true, "custom_validator": true,
	"mutually_exclusive_subsets": true, "json_schema": true, "func": true,
	"abstract": true, "reference": true,
}

// Schema-level keys of a record or of the top-level plugin schema that Kong would
// evaluate and this package does not.
var unsupportedSchemaKeys = []string{"entity_checks", "shorthand_fields", "transformations", "subschema_key"}

// ParseDump reads the output of `<plugin> -dump`:
// {"Protocol":"ProtoBuf:1","Plugins":[{"Name","Phases","Version","Priority","Schema"}]}.
// Like Kong 3.9 (process.lua: `(dump.Plugins or dump)[1]`) it uses the first plugin only.
func ParseDump(dump []byte) (*Plugin, error) {
	var raw struct {
		Protocol string
		Plugins  []struct {
			Name     string
			Phases   []string
			Version  string
			Priority float64 // a JSON number, as Kong reads it: 905.0 is 905
			Schema   map[string]any
		}
	}
	dec := json.NewDecoder(bytes.NewReader(dump))
	if err := dec.Decode(&raw); err != nil {
		return nil, fmt.Errorf("failed decoding plugin info: %w", err)
	}
	if len(raw.Plugins) == 0 {
		return nil, errors.New("not a plugin info table: no Plugins")
	}
	info := raw.Plugins[0]
	if info.Name == "" {
		return nil, errors.New("plugin info has no Name")
	}
	p := &Plugin{
		Name: info.Name, Phases: info.Phases, Version: info.Version,
		Priority: int(info.Priority), Protocol: raw.Protocol, Schema: info.Schema,
	}
	if p.Protocol == "" {
		// process.lua: server_def.protocol = dump.Protocol or "MsgPack:1"
		p.Protocol = "MsgPack:1"
	}
	if info.Schema == nil {
		return nil, errors.New("plugin info has no Schema")
	}
	for _, k := range unsupportedSchemaKeys {
		if _, ok := info.Schema[k]; ok {
			return nil, fmt.Errorf("schema: %q is not supported by kongschema", k)
		}
	}
	fields, err := parseFieldList(info.Schema["fields"], "schema")
	if err != nil {
		return nil, err
	}
	for _, nf := range fields {
		if nf.Name == "config" {
			p.Config = nf.Field
		}
	}
	if p.Config == nil {
		return nil, errors.New("schema has no config field")
	}
	if p.Config.Type != "record" {
		return nil, fmt.Errorf("schema: config is %q, want record", p.Config.Type)
	}
	// entity.lua make_records_required: the plugin subschema's records (config and
	// records nested through "fields") are required unless they say otherwise.
	makeRecordsRequired(p.Config)
	return p, nil
}

func makeRecordsRequired(f *Field) {
	if !f.requiredWasPresent {
		f.Required = true
	}
	for _, nf := range f.Fields {
		if nf.Field.Type == "record" {
			makeRecordsRequired(nf.Field)
		}
	}
}

func parseFieldList(v any, path string) ([]NamedField, error) {
	list, ok := v.([]any)
	if !ok {
		return nil, fmt.Errorf("%s: error in schema definition: no 'fields' table", path)
	}
	out := make([]NamedField, 0, len(list))
	for i, item := range list {
		m, ok := item.(map[string]any)
		if !ok || len(m) != 1 {
			return nil, fmt.Errorf("%s: fields[%d] must be a table with one key", path, i)
		}
		for name, def := range m {
			dm, ok := def.(map[string]any)
			if !ok {
				return nil, fmt.Errorf("%s.%s: field definition is not a table", path, name)
			}
			f, err := parseField(dm, path+"."+name)
			if err != nil {
				return nil, err
			}
			out = append(out, NamedField{Name: name, Field: f})
		}
	}
	return out, nil
}

var validTypes = map[string]bool{
	"array": true, "set": true, "string": true, "number": true, "boolean": true,
	"integer": true, "map": true, "record": true,
}

func parseField(def map[string]any, path string) (*Field, error) {
	f := &Field{}
	t, _ := def["type"].(string)
	if t == "" {
		return nil, fmt.Errorf("%s: missing type", path)
	}
	if !validTypes[t] {
		return nil, fmt.Errorf("%s: type %q is not supported by kongschema", path, t)
	}
	f.Type = t
	keys := make([]string, 0, len(def))
	for k := range def {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	for _, k := range keys {
		if err := f.parseAttr(k, def[k], path); err != nil {
			return nil, err
		}
	}
	if err := f.checkParts(def, path); err != nil {
		return nil, err
	}
	return f, nil
}

// parseAttr reads one attribute of a field definition into f.
func (f *Field) parseAttr(k string, v any, path string) error {
	switch k {
	case "type":
		return nil
	case "required", "default", "fields", "elements", "keys", "values":
		return f.parseShape(k, v, path)
	case "eq", "ne", "one_of", "not_one_of", "contains":
		return f.parseValueRule(k, v, path)
	case "gt", "between", "len_eq", "len_min", "len_max", "starts_with":
		return f.parseBoundRule(k, v, path)
	case "uuid":
		f.UUID, _ = v.(bool)
	case "timestamp":
		f.Timestamp, _ = v.(bool)
	case "err":
		f.Err, _ = v.(string)
	default:
		if unsupportedAttributes[k] {
			return fmt.Errorf("%s: attribute %q is not supported by kongschema", path, k)
		}
		if !inertAttributes[k] {
			return fmt.Errorf("%s: unknown schema attribute %q", path, k)
		}
	}
	return nil
}

// parseShape reads what the field is made of: required, default and the
// definitions of its parts.
func (f *Field) parseShape(k string, v any, path string) error {
	var err error
	switch k {
	case "required":
		b, ok := v.(bool)
		if !ok {
			return fmt.Errorf("%s: required must be a boolean", path)
		}
		f.Required, f.requiredWasPresent = b, true
	case "default":
		f.HasDefault, f.Default = true, normalize(v)
	case "fields":
		if f.Type != "record" {
			return fmt.Errorf("%s: %s cannot have attribute 'fields'", path, f.Type)
		}
		if f.Fields, err = parseFieldList(v, path); err != nil {
			return err
		}
	case "elements", "keys", "values":
		dm, ok := v.(map[string]any)
		if !ok {
			return fmt.Errorf("%s: %s must be a table", path, k)
		}
		sub, err := parseField(dm, path+"."+k)
		if err != nil {
			return err
		}
		switch k {
		case "elements":
			f.Elements = sub
		case "keys":
			f.Keys = sub
		default:
			f.Values = sub
		}
	}
	return nil
}

// parseValueRule reads the validators that compare the value with given
// values.
func (f *Field) parseValueRule(k string, v any, path string) error {
	switch k {
	case "eq":
		f.HasEq, f.Eq = true, normalize(v)
	case "ne":
		f.HasNe, f.Ne = true, normalize(v)
	case "one_of", "not_one_of":
		l, ok := v.([]any)
		if !ok {
			return fmt.Errorf("%s: %s must be an array", path, k)
		}
		for i := range l {
			l[i] = normalize(l[i])
		}
		if k == "one_of" {
			f.OneOf = l
		} else {
			f.NotOneOf = l
		}
	case "contains":
		f.HasContains, f.Contains = true, normalize(v)
	}
	return nil
}

// parseBoundRule reads the validators that bound a number, a length or a
// prefix.
func (f *Field) parseBoundRule(k string, v any, path string) error {
	switch k {
	case "gt":
		n, ok := v.(float64)
		if !ok {
			return fmt.Errorf("%s: gt must be a number", path)
		}
		f.Gt = &n
	case "between":
		l, ok := v.([]any)
		if !ok || len(l) != 2 {
			return fmt.Errorf("%s: between must be a pair of numbers", path)
		}
		lo, ok1 := l[0].(float64)
		hi, ok2 := l[1].(float64)
		if !ok1 || !ok2 {
			return fmt.Errorf("%s: between must be a pair of numbers", path)
		}
		f.Between = []float64{lo, hi}
	case "len_eq", "len_min", "len_max":
		n, ok := v.(float64)
		if !ok || n != float64(int(n)) {
			return fmt.Errorf("%s: %s must be an integer", path, k)
		}
		i := int(n)
		switch k {
		case "len_eq":
			f.LenEq = &i
		case "len_min":
			f.LenMin = &i
		default:
			f.LenMax = &i
		}
	case "starts_with":
		s, ok := v.(string)
		if !ok {
			return fmt.Errorf("%s: starts_with must be a string", path)
		}
		f.StartsWith = &s
	}
	return nil
}

// checkParts applies metaschema.lua required_attributes: array/set need
// elements, map keys and values, record fields.
func (f *Field) checkParts(def map[string]any, path string) error {
	switch t := f.Type; t {
	case "array", "set":
		if f.Elements == nil {
			return fmt.Errorf("%s: field of type '%s' must declare 'elements'", path, t)
		}
	case "map":
		if f.Keys == nil || f.Values == nil {
			return fmt.Errorf("%s: field of type 'map' must declare 'keys' and 'values'", path)
		}
	case "record":
		if _, ok := def["fields"]; !ok {
			return fmt.Errorf("%s: field of type 'record' must declare 'fields'", path)
		}
	}
	return nil
}

// normalize turns every JSON number into float64, as Lua holds all numbers as
// doubles, so comparisons and re-encoding behave the same whatever the caller
// passed in (int, int64, json.Number, float64).
func normalize(v any) any {
	switch x := v.(type) {
	case int:
		return float64(x)
	case int32:
		return float64(x)
	case int64:
		return float64(x)
	case uint:
		return float64(x)
	case uint32:
		return float64(x)
	case uint64:
		return float64(x)
	case float32:
		return float64(x)
	case json.Number:
		f, err := x.Float64()
		if err != nil {
			return x.String()
		}
		return f
	case []string:
		out := make([]any, len(x))
		for i, s := range x {
			out[i] = s
		}
		return out
	case []any:
		out := make([]any, len(x))
		for i, e := range x {
			out[i] = normalize(e)
		}
		return out
	case map[string]string:
		out := make(map[string]any, len(x))
		for k, s := range x {
			out[k] = s
		}
		return out
	case map[string]any:
		out := make(map[string]any, len(x))
		for k, e := range x {
			out[k] = normalize(e)
		}
		return out
	}
	return v
}
