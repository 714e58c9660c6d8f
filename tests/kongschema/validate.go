package kongschema

import (
	"math"
	"regexp"
	"sort"
	"strconv"
	"strings"
)

// Kong's messages, from validation_errors in kong/db/schema/init.lua (3.9.3).
const (
	msgArray    = "expected an array"
	msgSet      = "expected a set"
	msgMap      = "expected a map"
	msgRecord   = "expected a record"
	msgString   = "expected a string"
	msgNumber   = "expected a number"
	msgBoolean  = "expected a boolean"
	msgInteger  = "expected an integer"
	msgRequired = "required field missing"
	msgUnknown  = "unknown field"
)

// Validate does what Kong's Admin API does with a plugin's config on insert:
// Schema:process_auto_fields(..., "insert") fills defaults (nested records too),
// then Schema:validate checks the result.
//
// filled is the config as Kong stores it and the Admin API prints it: every
// schema field present, unset ones as nil (JSON null); numbers are float64, as
// in Lua. It is nil when errs is not. errs is Kong's nested error table under
// "config", e.g. {"registry":"expected one of: kong, redis","redis":{"port":"value
// should be between 1 and 65535"}}; a failing array element shows as a list with
// nil where elements were fine, as cjson prints Kong's {[i]=err} table.
// A nil config means the "config" key was absent, which Kong fills from defaults.
func (p *Plugin) Validate(config map[string]any) (filled map[string]any, errs map[string]any) {
	in := map[string]any{}
	if config != nil {
		in = normalize(config).(map[string]any)
	}
	processed := processRecord(p.Config, in)
	if e := validateRecord(p.Config, processed); e != nil {
		return nil, e
	}
	return processed, nil
}

// ForPlugin turns a stored config (Validate's filled) into what the plugin
// receives in cmd_start_instance before Kong adds its own keys: Kong reads the
// entity back in the "select" context without nulls, so unset fields are absent,
// a record with nothing set is {}, and keys that are not schema fields are gone.
func (p *Plugin) ForPlugin(filled map[string]any) map[string]any {
	return selectRecord(p.Config, filled)
}

func selectRecord(f *Field, data map[string]any) map[string]any {
	out := make(map[string]any, len(data))
	for _, nf := range f.Fields {
		v, ok := data[nf.Name]
		if !ok || v == nil {
			continue
		}
		out[nf.Name] = selectValue(nf.Field, v)
	}
	return out
}

func selectValue(f *Field, v any) any {
	switch f.Type {
	case "record":
		if m, ok := v.(map[string]any); ok {
			return selectRecord(f, m)
		}
	case "array", "set":
		if l, ok := v.([]any); ok {
			out := make([]any, len(l))
			for i, e := range l {
				out[i] = selectValue(f.Elements, e)
			}
			return out
		}
	case "map":
		if m, ok := v.(map[string]any); ok {
			out := make(map[string]any, len(m))
			for k, e := range m {
				out[k] = selectValue(f.Values, e)
			}
			return out
		}
	}
	return v
}

// processRecord is process_auto_fields(data, "insert") for a record schema. It
// keeps keys the schema does not know (validation reports them) and fills every
// schema field through adjust_field_for_context.
func processRecord(f *Field, data map[string]any) map[string]any {
	out := make(map[string]any, len(data)+len(f.Fields))
	for k, v := range data {
		out[k] = v
	}
	for _, nf := range f.Fields {
		v, present := data[nf.Name]
		nv, keep := adjust(nf.Field, v, present)
		if keep {
			out[nf.Name] = nv
		} else {
			delete(out, nf.Name)
		}
	}
	return out
}

// adjust is adjust_field_for_context in the "insert" context. present=false is
// Lua's nil (absent); present with v == nil is ngx.null (JSON null).
func adjust(f *Field, v any, present bool) (any, bool) {
	switch f.Type {
	case "record":
		// should_recurse_record: value ~= null and (value ~= nil or field.required)
		if (present && v != nil) || (!present && f.Required) {
			if !present {
				v, present = handleMissing(f)
			}
			if m, ok := asTable(v); ok {
				return processRecord(f, m), true
			}
		}
	case "array", "set":
		if l, ok := v.([]any); ok {
			if f.Type == "set" {
				l = dedupe(l)
			}
			out := make([]any, len(l))
			for i, e := range l {
				out[i], _ = adjust(f.Elements, e, true)
			}
			v = out
		} else if m, ok := v.(map[string]any); ok {
			// make_array / make_set: an empty table is a sequence and gets
			// cjson.array_mt, so it is stored and printed as [].
			if len(m) == 0 {
				v = []any{}
			} else {
				v = adjustMapValues(f.Elements, m)
			}
		}
	case "map":
		if m, ok := v.(map[string]any); ok {
			v = adjustMapValues(f.Values, m)
		} else if l, ok := v.([]any); ok {
			out := make([]any, len(l))
			for i, e := range l {
				out[i], _ = adjust(f.Values, e, true)
			}
			v = out
		}
	}
	if !present {
		return handleMissing(f)
	}
	return v, true
}

func adjustMapValues(sub *Field, m map[string]any) map[string]any {
	out := make(map[string]any, len(m))
	for k, e := range m {
		out[k], _ = adjust(sub, e, true)
	}
	return out
}

// handleMissing is handle_missing_field: the default if any, null when the field
// is not required, the expanded structure of a required record, else absent (and
// validation then says "required field missing").
func handleMissing(f *Field) (any, bool) {
	if f.HasDefault {
		return deepCopy(f.Default), true
	}
	if !f.Required {
		return nil, true
	}
	if f.Type == "record" {
		return processRecord(f, map[string]any{}), true
	}
	return nil, false
}

// asTable accepts what Lua would see as a table usable as a record: an object,
// or an empty JSON array (cjson decodes [] and {} to the same empty table). A
// non-empty array becomes a table with integer keys, which validation then
// reports as unknown fields, as Kong does.
func asTable(v any) (map[string]any, bool) {
	switch x := v.(type) {
	case map[string]any:
		return x, true
	case []any:
		m := make(map[string]any, len(x))
		for i, e := range x {
			m[strconv.Itoa(i+1)] = e
		}
		return m, true
	}
	return nil, false
}

// asSequence is is_sequence: a JSON array, or an empty object (an empty Lua table).
func asSequence(v any) ([]any, bool) {
	switch x := v.(type) {
	case []any:
		return x, true
	case map[string]any:
		if len(x) == 0 {
			return []any{}, true
		}
	}
	return nil, false
}

func validateRecord(f *Field, data map[string]any) map[string]any {
	errs := map[string]any{}
	byName := make(map[string]*Field, len(f.Fields))
	for _, nf := range f.Fields {
		byName[nf.Name] = nf.Field
	}
	for _, k := range sortedKeys(data) {
		// Schema.new: unvalidated_fields["updated_at"] always answers true, so a
		// key of that name is never checked, even in a plugin config.
		if k == "updated_at" {
			continue
		}
		field, ok := byName[k]
		if !ok {
			errs[k] = msgUnknown
			continue
		}
		if e := validateField(field, data[k], false); e != nil {
			errs[k] = e
		}
	}
	// Schema:validate, full_check: required fields absent or null.
	for _, nf := range f.Fields {
		if v, ok := data[nf.Name]; nf.Field.Required && (!ok || v == nil) {
			errs[nf.Name] = msgRequired
		}
	}
	if len(errs) == 0 {
		return nil
	}
	return errs
}

// validateField is Schema:validate_field. It returns nil when the value is
// valid, else a message or a nested error table. forceRequired stands for
// validate_elements setting field.elements.required = true.
func validateField(f *Field, v any, forceRequired bool) any {
	if v == nil {
		if f.HasNe && f.Ne == nil {
			return orErr(f, "value must not be null")
		}
		if f.HasEq && f.Eq != nil {
			return "value must be " + luaToString(f.Eq)
		}
		if f.Required || forceRequired {
			return msgRequired
		}
		return nil
	}
	if f.HasEq && f.Eq == nil {
		return orErr(f, "value must be null")
	}
	switch f.Type {
	case "array", "set":
		l, ok := asSequence(v)
		if !ok {
			if f.Type == "set" {
				return msgSet
			}
			return msgArray
		}
		if e := validateElements(f.Elements, l); e != nil {
			return e
		}
	case "map":
		if e := validateMap(f, v); e != nil {
			return e
		}
	case "record":
		m, ok := asTable(v)
		if !ok {
			return msgRecord
		}
		if e := validateRecord(f, processRecord(f, m)); e != nil {
			return e
		}
	case "integer":
		n, ok := v.(float64)
		if !ok || n != math.Floor(n) || math.IsInf(n, 0) {
			return msgInteger
		}
	case "number":
		if _, ok := v.(float64); !ok {
			return msgNumber
		}
	case "boolean":
		if _, ok := v.(bool); !ok {
			return msgBoolean
		}
	case "string":
		if _, ok := v.(string); !ok {
			return msgString
		}
	}
	if msg := runValidators(f, v); msg != "" {
		return orErr(f, msg)
	}
	return nil
}

func orErr(f *Field, msg string) string {
	if f.Err != "" {
		return f.Err
	}
	return msg
}

func validateElements(elem *Field, l []any) any {
	var errs []any
	for i, e := range l {
		if err := validateField(elem, e, true); err != nil {
			for len(errs) < i {
				errs = append(errs, nil)
			}
			errs = append(errs, err)
		}
	}
	if errs == nil {
		return nil
	}
	return errs
}

// validateMap returns the first failing key or value, as Kong's map branch does
// (Kong's order is pairs() order; here keys are sorted to stay deterministic).
func validateMap(f *Field, v any) any {
	switch x := v.(type) {
	case map[string]any:
		for _, k := range sortedKeys(x) {
			if e := validateField(f.Keys, k, true); e != nil {
				return e
			}
			if e := validateField(f.Values, x[k], true); e != nil {
				return e
			}
		}
	case []any:
		// A JSON array is a Lua table with integer keys.
		for i, e := range x {
			if err := validateField(f.Keys, float64(i+1), true); err != nil {
				return err
			}
			if err := validateField(f.Values, e, true); err != nil {
				return err
			}
		}
	default:
		return msgMap
	}
	return nil
}

// runValidators applies the validators in Schema.validators_order and returns
// the first failure's message.
func runValidators(f *Field, v any) string {
	num, isNum := v.(float64)
	str, isStr := v.(string)
	if f.HasEq && !luaEqual(v, f.Eq) {
		return "value must be " + luaToString(f.Eq)
	}
	if f.HasNe && luaEqual(v, f.Ne) {
		return "value must not be " + luaToString(v)
	}
	if f.NotOneOf != nil {
		for _, o := range f.NotOneOf {
			if luaEqual(v, o) {
				return "must not be one of: " + luaConcat(f.NotOneOf)
			}
		}
	}
	if f.OneOf != nil {
		found := false
		for _, o := range f.OneOf {
			if luaEqual(v, o) {
				found = true
				break
			}
		}
		if !found {
			return "expected one of: " + luaConcat(f.OneOf)
		}
	}
	if f.Gt != nil && isNum && !(num > *f.Gt) {
		return "value must be greater than " + luaNumber(*f.Gt)
	}
	if f.Timestamp && isNum && !(num > 0) {
		return "expected a valid timestamp"
	}
	if f.UUID && isStr && !uuidRe.MatchString(str) {
		return "expected a valid UUID"
	}
	if f.Between != nil && isNum && (num < f.Between[0] || num > f.Between[1]) {
		return "value should be between " + luaInt(f.Between[0]) + " and " + luaInt(f.Between[1])
	}
	lenMin := f.LenMin
	if f.Type == "string" && lenMin == nil {
		// validate_field: "empty strings are not accepted by default"
		one := 1
		lenMin = &one
	}
	if f.LenEq != nil || lenMin != nil || f.LenMax != nil {
		n := luaLen(f, v)
		if f.LenEq != nil && n != *f.LenEq {
			return "length must be " + strconv.Itoa(*f.LenEq)
		}
		if lenMin != nil && n < *lenMin {
			return "length must be at least " + strconv.Itoa(*lenMin)
		}
		if f.LenMax != nil && n > *f.LenMax {
			return "length must be at most " + strconv.Itoa(*f.LenMax)
		}
	}
	if f.StartsWith != nil && isStr && !strings.HasPrefix(str, *f.StartsWith) {
		return "should start with: " + *f.StartsWith
	}
	if f.HasContains {
		l, _ := asSequence(v)
		found := false
		for _, e := range l {
			if luaEqual(e, f.Contains) {
				found = true
				break
			}
		}
		if !found {
			return "expected to contain: " + luaToString(f.Contains)
		}
	}
	return ""
}

var uuidRe = regexp.MustCompile(`(?i)^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$`)

// luaLen is make_length_validator's length: #value (bytes of a string, elements
// of an array), plus the number of pairs for a map.
func luaLen(f *Field, v any) int {
	switch x := v.(type) {
	case string:
		return len(x)
	case []any:
		if f.Type == "map" {
			return 2 * len(x)
		}
		return len(x)
	case map[string]any:
		return len(x)
	}
	return 0
}

func luaEqual(a, b any) bool {
	switch x := a.(type) {
	case float64:
		y, ok := b.(float64)
		return ok && x == y
	case string:
		y, ok := b.(string)
		return ok && x == y
	case bool:
		y, ok := b.(bool)
		return ok && x == y
	case nil:
		return b == nil
	}
	// Tables compare by identity in Lua: two decoded tables are never equal.
	return false
}

// luaNumber formats like LuaJIT's tostring: "%.14g".
// Go's %.14g is C's: 905 stays "905", 1e14 is "1e+14" as in LuaJIT.
func luaNumber(n float64) string {
	return strconv.FormatFloat(n, 'g', 14, 64)
}

// luaInt formats like string.format("%d", n).
func luaInt(n float64) string { return strconv.FormatInt(int64(n), 10) }

func luaToString(v any) string {
	switch x := v.(type) {
	case float64:
		return luaNumber(x)
	case string:
		return x
	case bool:
		return strconv.FormatBool(x)
	case nil:
		return "null"
	}
	return "table"
}

// luaConcat is table.concat(options, ", ").
func luaConcat(l []any) string {
	parts := make([]string, len(l))
	for i, v := range l {
		parts[i] = luaToString(v)
	}
	return strings.Join(parts, ", ")
}

func dedupe(l []any) []any {
	out := make([]any, 0, len(l))
	for _, v := range l {
		dup := false
		for _, o := range out {
			if luaEqual(v, o) {
				dup = true
				break
			}
		}
		if !dup {
			out = append(out, v)
		}
	}
	return out
}

func deepCopy(v any) any {
	switch x := v.(type) {
	case []any:
		out := make([]any, len(x))
		for i, e := range x {
			out[i] = deepCopy(e)
		}
		return out
	case map[string]any:
		out := make(map[string]any, len(x))
		for k, e := range x {
			out[k] = deepCopy(e)
		}
		return out
	}
	return v
}

func sortedKeys(m map[string]any) []string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	return keys
}
