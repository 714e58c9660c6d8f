package api

import (
	"encoding/json"
	"errors"
	"io"
	"net/http"
	"strings"

	"github.com/labstack/echo/v4"
)

// readObject decodes a JSON object body into raw fields.
func readObject(c echo.Context) (map[string]json.RawMessage, error) {
	body, err := io.ReadAll(c.Request().Body)
	if err != nil {
		var mbe *http.MaxBytesError
		if errors.As(err, &mbe) {
			return nil, err
		}
		return nil, badRequest("reading body: %v", err)
	}
	var m map[string]json.RawMessage
	if err := json.Unmarshal(body, &m); err != nil {
		var se *json.SyntaxError
		if errors.As(err, &se) || len(strings.TrimSpace(string(body))) == 0 {
			return nil, badRequest("body is not valid json")
		}
		return nil, badRequest("body must be a json object")
	}
	if m == nil {
		return nil, badRequest("body must be a json object")
	}
	return m, nil
}

func stringField(m map[string]json.RawMessage, name string, required bool) (string, error) {
	raw, ok := m[name]
	if !ok || string(raw) == "null" {
		if required {
			return "", badRequest("%s: required", name)
		}
		return "", nil
	}
	var s string
	if err := json.Unmarshal(raw, &s); err != nil {
		return "", badRequest("%s: expected a string", name)
	}
	if required && s == "" {
		return "", badRequest("%s: required", name)
	}
	return s, nil
}

// decodeStrict decodes a JSON object body into v; wrong types and unknown
// fields are 400s naming the field.
func decodeStrict(c echo.Context, v any) error {
	m, err := readObject(c)
	if err != nil {
		return err
	}
	b, _ := json.Marshal(m)
	dec := json.NewDecoder(strings.NewReader(string(b)))
	dec.DisallowUnknownFields()
	if err := dec.Decode(v); err != nil {
		var te *json.UnmarshalTypeError
		if errors.As(err, &te) {
			return badRequest("%s: expected %s", te.Field, jsonKind(te.Type.Kind().String()))
		}
		msg := strings.TrimPrefix(err.Error(), "json: ")
		return badRequest("%s", msg)
	}
	return nil
}

func jsonKind(k string) string {
	switch {
	case strings.HasPrefix(k, "int"), strings.HasPrefix(k, "uint"):
		return "an integer"
	case k == "string":
		return "a string"
	case k == "bool":
		return "a boolean"
	case k == "slice":
		return "an array"
	case k == "map", k == "struct":
		return "an object"
	}
	return k
}
