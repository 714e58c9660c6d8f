package kongfake

import (
	"fmt"
	"net/http"
	"sort"
	"strings"
)

// Kong error codes (kong/db/errors.lua).
const (
	codeSchemaViolation      = 2
	codeForeignKeyViolation  = 4
	codeUniqueViolation      = 5
	codeNotFound             = 6
	codeInvalidOffset        = 7
	codeInvalidSize          = 9
	codeInvalidOptions       = 11
	codeOperationUnsupported = 12
	codeDeclarativeConfig    = 14
)

type apiError struct {
	status int
	body   map[string]any
}

func notFound() *apiError {
	return &apiError{http.StatusNotFound, map[string]any{"message": "Not found"}}
}

// patchNotFound is Kong's answer to a PATCH of a missing top-level entity
// (endpoints.lua's patch_entity_endpoint): 404 code 6 naming the key,
// by primary key for a uuid, by endpoint key otherwise. Plugins (their own
// PATCH handler) and nested entities answer a plain "Not found".
func patchNotFound(k *kindDef, key string, nested bool) *apiError {
	if nested || k.name == "plugins" || (k.endpointKey == "" && !isUUID(key)) {
		return notFound()
	}
	field, msg := k.endpointKey, "could not find the entity with '{%s=%q}'"
	if isUUID(key) {
		field, msg = "id", "could not find the entity with primary key '{%s=%q}'"
	}
	return &apiError{http.StatusNotFound, map[string]any{"code": codeNotFound, "name": "not found",
		"message": fmt.Sprintf(msg, field, key), "fields": map[string]any{field: key}}}
}

func message(status int, msg string) *apiError {
	return &apiError{status, map[string]any{"message": msg}}
}

// schemaViolation builds Kong's 400 code 2 body; the message lists the field
// errors sorted by name like errors.lua does.
func schemaViolation(fields map[string]any) *apiError {
	luaArrays(fields)
	parts := violationParts(fields)
	msg := "schema violation (" + strings.Join(parts, "; ") + ")"
	if len(parts) != 1 {
		msg = fmt.Sprintf("%d schema violations (%s)", len(parts), strings.Join(parts, "; "))
	}
	return &apiError{http.StatusBadRequest, map[string]any{
		"code": codeSchemaViolation, "name": "schema violation", "message": msg, "fields": fields,
	}}
}

func uniqueViolation(fields map[string]any) *apiError {
	keys := make([]string, 0, len(fields))
	for k := range fields {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	var b strings.Builder
	b.WriteString("{")
	for i, k := range keys {
		if i > 0 {
			b.WriteString(",")
		}
		fmt.Fprintf(&b, "%s=%s", k, luaPretty(fields[k]))
	}
	b.WriteString("}")
	return &apiError{http.StatusConflict, map[string]any{
		"code": codeUniqueViolation, "name": "unique constraint violation",
		"message": fmt.Sprintf("UNIQUE violation detected on '%s'", b.String()), "fields": fields,
	}}
}

func luaPretty(v any) string {
	switch x := v.(type) {
	case nil:
		return "null"
	case string:
		return fmt.Sprintf("%q", x)
	case map[string]any:
		keys := make([]string, 0, len(x))
		for k := range x {
			keys = append(keys, k)
		}
		sort.Strings(keys)
		parts := make([]string, len(keys))
		for i, k := range keys {
			parts[i] = k + "=" + luaPretty(x[k])
		}
		return "{" + strings.Join(parts, ",") + "}"
	default:
		return fmt.Sprint(x)
	}
}

func foreignKeyViolation(field, parentKind string, key map[string]any) *apiError {
	return &apiError{http.StatusBadRequest, map[string]any{
		"code": codeForeignKeyViolation, "name": "foreign key violation",
		"message": fmt.Sprintf("the foreign key '%s' does not reference an existing '%s' entity.", luaPretty(key), parentKind),
		"fields":  map[string]any{field: key},
	}}
}

func operationUnsupported(op, kind string) *apiError {
	return &apiError{http.StatusMethodNotAllowed, map[string]any{
		"code": codeOperationUnsupported, "name": "operation unsupported",
		"message": fmt.Sprintf("cannot %s '%s' entities when not using a database", op, kind),
	}}
}

func declarativeError(fields map[string]any) *apiError {
	return &apiError{http.StatusBadRequest, map[string]any{
		"code": codeDeclarativeConfig, "name": "invalid declarative configuration",
		"message": "declarative config is invalid: " + luaPretty(fields), "fields": fields,
	}}
}
