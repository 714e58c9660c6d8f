package kongfake

import (
	"net/http"
	"strconv"
	"strings"
)

// Kong versions answer some requests differently; the fake answers as the
// version in Options.Version. Each difference below was observed on the
// real Kongs built in /opt/realkong (3.4.2) and /opt/realkong39 (3.9.3).

// minor returns Options.Version's minor number for 3.x (9 when unparsable).
func (f *Fake) minor() int {
	parts := strings.Split(f.opts.Version, ".")
	if len(parts) < 2 || parts[0] != "3" {
		return 9
	}
	n, err := strconv.Atoi(parts[1])
	if err != nil {
		return 9
	}
	return n
}

// emptyList is an empty "data" as the Kong version writes it in a paged
// answer. Kong 3.4's /tags/{tag} encodes an empty Lua table, which cjson
// writes as an object: {"data":{},"next":null}. 3.9 writes [].
func (f *Fake) emptyTagData() any {
	if f.minor() <= 4 {
		return map[string]any{}
	}
	return []any{}
}

// emptyTagsError answers an empty ?tags=: Kong 3.4.2 fails with a 500
// (the empty filter reaches the database layer), 3.9.3 refuses it with
// 400 code 11.
func (f *Fake) emptyTagsError(t []string) *apiError {
	if len(t) > 0 && t[0] != "" {
		return nil
	}
	if f.minor() <= 4 {
		return message(http.StatusInternalServerError, "An unexpected error occurred")
	}
	return &apiError{http.StatusBadRequest, map[string]any{"code": codeInvalidOptions, "name": "invalid options",
		"message": "invalid option (tags: cannot be null)", "options": map[string]any{"tags": "cannot be null"}}}
}
