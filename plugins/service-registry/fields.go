package main

import (
	"bytes"
	"encoding/json"
	"fmt"
	"reflect"
	"strconv"
	"strings"
)

// Every config field declares its default and validators ONCE, in its `sr`
// struct tag; that one declaration drives the -dump schema Kong enforces,
// the Go-side defaults and the defensive validation in the handler.
//
// Tag grammar, ';'-separated:
//
//	default=<value>         lists are comma-separated (default=500,502);
//	                        integer lists take inclusive ranges (default=500-599)
//	one_of=a,b,c            strings
//	between=lo,hi           integers and numbers, inclusive
//	gt=n                    integers and numbers
//	elem_between=lo,hi      the integer elements of a list
//	required                must be present (Kong: "required field missing")
//	secret                  referenceable + encrypted, like Kong's redis.password
//
// Nested records are always "required": true without a default, which makes
// Kong expand a missing record into its fields' defaults (handle_missing_field
// in kong/db/schema/init.lua). A `desc` tag becomes the field's description.
type rule struct {
	def         string
	hasDef      bool
	oneOf       []string
	between     []float64
	gt          *float64
	elemBetween []float64
	required    bool
	secret      bool
}

func parseRule(tag string) (rule, error) {
	var r rule
	for _, part := range strings.Split(tag, ";") {
		part = strings.TrimSpace(part)
		if part == "" {
			continue
		}
		k, v, _ := strings.Cut(part, "=")
		switch k {
		case "default":
			r.def, r.hasDef = v, true
		case "one_of":
			r.oneOf = strings.Split(v, ",")
		case "between", "elem_between":
			lo, hi, ok := strings.Cut(v, ",")
			a, err1 := strconv.ParseFloat(lo, 64)
			b, err2 := strconv.ParseFloat(hi, 64)
			if !ok || err1 != nil || err2 != nil || a > b {
				return r, fmt.Errorf("bad %s %q", k, v)
			}
			if k == "between" {
				r.between = []float64{a, b}
			} else {
				r.elemBetween = []float64{a, b}
			}
		case "gt":
			g, err := strconv.ParseFloat(v, 64)
			if err != nil {
				return r, fmt.Errorf("bad gt %q", v)
			}
			r.gt = &g
		case "required":
			r.required = true
		case "secret":
			r.secret = true
		default:
			return r, fmt.Errorf("unknown rule %q", k)
		}
	}
	return r, nil
}

// typedDefault converts the tag's default text to the field's Go type.
func typedDefault(t reflect.Type, s string) (any, error) {
	switch t.Kind() {
	case reflect.String:
		if s == "" {
			return nil, fmt.Errorf("string default cannot be empty (Kong refuses empty strings)")
		}
		return s, nil
	case reflect.Bool:
		return strconv.ParseBool(s)
	case reflect.Int:
		return strconv.Atoi(s)
	case reflect.Float64:
		return strconv.ParseFloat(s, 64)
	case reflect.Slice:
		out := reflect.MakeSlice(t, 0, 4)
		if s != "" {
			for _, item := range strings.Split(s, ",") {
				if lo, hi, ok := strings.Cut(item, "-"); ok && lo != "" && t.Elem().Kind() == reflect.Int {
					// A range keeps a default such as "every 5xx" one short
					// declaration; the schema and Go still get every value.
					a, err1 := strconv.Atoi(lo)
					b, err2 := strconv.Atoi(hi)
					if err1 != nil || err2 != nil || a > b || b-a >= 1000 {
						return nil, fmt.Errorf("bad range %q in list default", item)
					}
					for n := a; n <= b; n++ {
						out = reflect.Append(out, reflect.ValueOf(n).Convert(t.Elem()))
					}
					continue
				}
				v, err := typedDefault(t.Elem(), item)
				if err != nil {
					return nil, err
				}
				out = reflect.Append(out, reflect.ValueOf(v))
			}
		}
		return out.Interface(), nil
	}
	return nil, fmt.Errorf("no default for kind %s", t.Kind())
}

func jsonName(f reflect.StructField) string {
	name, _, _ := strings.Cut(f.Tag.Get("json"), ",")
	if name == "" {
		return strings.ToLower(f.Name)
	}
	return name
}

// fieldRule returns f's rule; a malformed tag is a programming error that
// TestRulesParse catches, so here it degrades to "no rule".
func fieldRule(f reflect.StructField) rule {
	r, _ := parseRule(f.Tag.Get("sr"))
	return r
}

func isRecord(t reflect.Type) bool { return t.Kind() == reflect.Struct }

// ---- Go side: lenient decoding, defaults, validation ----

// decoder collects every problem instead of failing: Kong must never see a
// decoding error (KONG-FACTS: a failed instance start is retried forever).
type decoder struct{ errs []string }

func (d *decoder) fail(path, why string) { d.errs = append(d.errs, path+": "+why) }

func isNull(raw json.RawMessage) bool {
	t := bytes.TrimSpace(raw)
	return len(t) == 0 || string(t) == "null"
}

// decodeStruct fills v (a struct) from raw (a JSON object, possibly absent),
// applying defaults to absent fields and checking each value present.
func (d *decoder) decodeStruct(raw json.RawMessage, v reflect.Value, prefix string) {
	m := map[string]json.RawMessage{}
	if !isNull(raw) {
		if err := json.Unmarshal(raw, &m); err != nil {
			path := strings.TrimSuffix(prefix, ".")
			if path == "" {
				path = "config"
			}
			d.fail(path, "expected a record")
			m = map[string]json.RawMessage{}
		}
	}
	t := v.Type()
	for i := 0; i < t.NumField(); i++ {
		f := t.Field(i)
		if f.PkgPath != "" {
			continue
		}
		name := jsonName(f)
		path := prefix + name
		r := fieldRule(f)
		fv := v.Field(i)
		val, present := m[name]
		if present && isNull(val) {
			present = false
		}
		if isRecord(f.Type) {
			d.decodeStruct(val, fv, path+".")
			continue
		}
		if !present {
			if r.required {
				d.fail(path, "required field missing")
			}
			if r.hasDef {
				def, err := typedDefault(f.Type, r.def)
				if err == nil {
					fv.Set(reflect.ValueOf(def))
				}
			}
			continue
		}
		if f.Type.Kind() == reflect.Slice && isRecord(f.Type.Elem()) {
			var items []json.RawMessage
			if err := json.Unmarshal(val, &items); err != nil {
				d.fail(path, "expected an array")
				continue
			}
			out := reflect.MakeSlice(f.Type, len(items), len(items))
			for j, item := range items {
				d.decodeStruct(item, out.Index(j), fmt.Sprintf("%s[%d].", path, j+1))
			}
			fv.Set(out)
			continue
		}
		if err := json.Unmarshal(val, fv.Addr().Interface()); err != nil {
			fv.Set(reflect.Zero(f.Type))
			d.fail(path, "expected "+kongType(f.Type))
			continue
		}
		d.check(path, fv, r)
	}
}

func kongType(t reflect.Type) string {
	switch t.Kind() {
	case reflect.String:
		return "a string"
	case reflect.Bool:
		return "a boolean"
	case reflect.Int:
		return "an integer"
	case reflect.Float64:
		return "a number"
	case reflect.Slice:
		return "an array"
	}
	return t.Kind().String()
}

func fmtNum(f float64) string { return strconv.FormatFloat(f, 'f', -1, 64) }

// check applies one field's validators to a present value, with Kong's texts.
func (d *decoder) check(path string, v reflect.Value, r rule) {
	switch v.Kind() {
	case reflect.String:
		s := v.String()
		if s == "" {
			d.fail(path, "length must be at least 1")
			return
		}
		if len(r.oneOf) > 0 {
			for _, o := range r.oneOf {
				if s == o {
					return
				}
			}
			d.fail(path, "expected one of: "+strings.Join(r.oneOf, ", "))
		}
	case reflect.Int, reflect.Float64:
		var n float64
		if v.Kind() == reflect.Int {
			n = float64(v.Int())
		} else {
			n = v.Float()
		}
		if r.between != nil && (n < r.between[0] || n > r.between[1]) {
			d.fail(path, fmt.Sprintf("value should be between %s and %s", fmtNum(r.between[0]), fmtNum(r.between[1])))
		}
		if r.gt != nil && !(n > *r.gt) {
			d.fail(path, "value must be greater than "+fmtNum(*r.gt))
		}
	case reflect.Slice:
		if r.elemBetween == nil || v.Type().Elem().Kind() != reflect.Int {
			return
		}
		for i := 0; i < v.Len(); i++ {
			n := float64(v.Index(i).Int())
			if n < r.elemBetween[0] || n > r.elemBetween[1] {
				d.fail(fmt.Sprintf("%s[%d]", path, i+1), fmt.Sprintf("value should be between %s and %s", fmtNum(r.elemBetween[0]), fmtNum(r.elemBetween[1])))
			}
		}
	}
}

// ---- Kong side: enriching go-pdk's reflected schema ----

// enrichRecord adds each field's declared attributes to go-pdk's schema of
// the record t: fields is the "fields" array go-pdk produced from the same
// struct, matched by name.
func enrichRecord(fields []any, t reflect.Type) error {
	byName := map[string]reflect.StructField{}
	for i := 0; i < t.NumField(); i++ {
		f := t.Field(i)
		if f.PkgPath == "" {
			byName[jsonName(f)] = f
		}
	}
	for _, item := range fields {
		entry, ok := item.(map[string]any)
		if !ok || len(entry) != 1 {
			return fmt.Errorf("unexpected field entry %v", item)
		}
		for name, d := range entry {
			def, ok := d.(map[string]any)
			f, known := byName[name]
			if !ok || !known {
				return fmt.Errorf("field %q: not in %s", name, t.Name())
			}
			if err := enrichField(def, f); err != nil {
				return fmt.Errorf("%s: %w", name, err)
			}
		}
	}
	return nil
}

func enrichField(def map[string]any, f reflect.StructField) error {
	r, err := parseRule(f.Tag.Get("sr"))
	if err != nil {
		return err
	}
	if d := f.Tag.Get("desc"); d != "" {
		def["description"] = d
	}
	if isRecord(f.Type) {
		def["required"] = true
		sub, _ := def["fields"].([]any)
		return enrichRecord(sub, f.Type)
	}
	if f.Type.Kind() == reflect.Slice && isRecord(f.Type.Elem()) {
		el, _ := def["elements"].(map[string]any)
		sub, _ := el["fields"].([]any)
		if err := enrichRecord(sub, f.Type.Elem()); err != nil {
			return err
		}
	}
	if r.hasDef {
		v, err := typedDefault(f.Type, r.def)
		if err != nil {
			return err
		}
		def["default"] = v
	}
	if r.required {
		def["required"] = true
	}
	if r.secret {
		// As Kong's own redis.password: vault references allowed, stored encrypted.
		def["referenceable"] = true
		def["encrypted"] = true
	}
	if len(r.oneOf) > 0 {
		def["one_of"] = r.oneOf
	}
	if r.between != nil {
		def["between"] = numbers(f.Type, r.between)
	}
	if r.gt != nil {
		def["gt"] = numbers(f.Type, []float64{*r.gt})[0]
	}
	if r.elemBetween != nil {
		el, ok := def["elements"].(map[string]any)
		if !ok {
			return fmt.Errorf("elem_between on a field without elements")
		}
		el["between"] = numbers(f.Type.Elem(), r.elemBetween)
	}
	return nil
}

// numbers keeps integer bounds integral in the JSON ("between":[1,65535]).
func numbers(t reflect.Type, fs []float64) []any {
	out := make([]any, len(fs))
	for i, f := range fs {
		if t.Kind() == reflect.Int {
			out[i] = int64(f)
		} else {
			out[i] = f
		}
	}
	return out
}
