package kongfake

import (
	"fmt"
	"regexp"
	"strings"
)

// responseTransformer is the bundled plugin's config schema
// (kong/plugins/response-transformer/schema.lua), per version: rename
// gained "json" after 3.4.
type responseTransformer struct{ renameJSON bool }

// Element rules of the schema's arrays.
const (
	plainString = iota // string_array
	colonString        // colon_string_array: match "^[^:]+:.*$"
	colonHeader        // colon_headers_array: the match, then both sides valid header names
	jsonType           // one_of boolean, number, string
)

var (
	colonRe      = regexp.MustCompile(`^[^:]+:.*$`)
	headerNameRe = regexp.MustCompile(`^[a-zA-Z0-9-_]+$`)
)

func (rt responseTransformer) actions() map[string]map[string]int {
	colonRecord := map[string]int{"json": colonString, "json_types": jsonType, "headers": colonString}
	rename := map[string]int{"headers": colonHeader}
	if rt.renameJSON {
		rename["json"] = colonString
	}
	return map[string]map[string]int{
		"remove": {"json": plainString, "headers": plainString}, "rename": rename,
		"replace": colonRecord, "add": colonRecord, "append": colonRecord,
	}
}

func (rt responseTransformer) Validate(cfg map[string]any) (map[string]any, map[string]any) {
	actions := rt.actions()
	out := map[string]any{}
	errs := map[string]any{}
	for k := range cfg {
		if _, ok := actions[k]; !ok {
			errs[k] = "unknown field"
		}
	}
	for action, lists := range actions {
		in, _ := cfg[action].(map[string]any)
		if cfg[action] != nil && in == nil {
			errs[action] = "expected a record"
			continue
		}
		sub, subErrs := map[string]any{}, map[string]any{}
		for k := range in {
			if _, ok := lists[k]; !ok {
				subErrs[k] = "unknown field"
			}
		}
		for l, rule := range lists {
			v, ok := in[l]
			if !ok || v == nil {
				sub[l] = []any{}
				continue
			}
			arr, ok := v.([]any)
			if !ok {
				subErrs[l] = "expected an array"
				continue
			}
			if e := elementErrors(arr, rule); e != nil {
				subErrs[l] = e
			}
			sub[l] = arr
		}
		if len(subErrs) > 0 {
			errs[action] = subErrs
		}
		out[action] = sub
	}
	if len(errs) > 0 {
		return nil, errs
	}
	return out, nil
}

// elementErrors is Kong's array error: one entry per element, nil for the
// valid ones; nil when all are valid.
func elementErrors(arr []any, rule int) []any {
	errs := make([]any, len(arr))
	failed := false
	for i, e := range arr {
		s, ok := e.(string)
		var msg string
		switch {
		case !ok:
			msg = "expected a string"
		case rule == jsonType && s != "boolean" && s != "number" && s != "string":
			msg = "expected one of: boolean, number, string"
		case (rule == colonString || rule == colonHeader) && !colonRe.MatchString(s):
			msg = "invalid value: " + s
		case rule == colonHeader:
			msg = headerPairError(s)
		}
		if msg != "" {
			errs[i], failed = msg, true
		}
	}
	if !failed {
		return nil
	}
	return errs
}

// headerPairError is the schema's validate_headers(pair, true): the name
// and the value must both be valid header names.
func headerPairError(pair string) string {
	name, value, _ := strings.Cut(pair, ":")
	value = strings.TrimLeft(value, ":")
	for _, s := range []string{name, value} {
		if !headerNameRe.MatchString(s) {
			return fmt.Sprintf("'%s' is not a valid header", s)
		}
	}
	return ""
}
