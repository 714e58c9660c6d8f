package api

import (
	"errors"
	"fmt"
	"net/http"
	"strings"

	"github.com/labstack/echo/v4"

	"github.com/kong-service-registry/service-registry/internal/registry"
)

// httpError is the one way handlers refuse a request: an echo.HTTPError
// whose Message is the text the client reads; the cause, when there is
// one, goes in Internal (logged, never shown).
func httpError(status int, format string, a ...any) *echo.HTTPError {
	return &echo.HTTPError{Code: status, Message: message(fmt.Sprintf(format, a...))}
}

// message marks a Message as ours, written as is; a plain string Message
// is one of Echo's own ("Not Found"), lowercased for the contract.
type message string

func badRequest(format string, a ...any) *echo.HTTPError {
	return httpError(http.StatusBadRequest, format, a...)
}

// withBody is an error Message that adds fields beside "error" (a 409
// says what is registered). The contract only grows: "error" stays.
type withBody struct {
	msg   string
	extra map[string]any
}

func (w withBody) String() string { return w.msg }

// storeUnavailable is the 503 every handler answers when Redis is gone.
func storeUnavailable(cause error) *echo.HTTPError {
	return &echo.HTTPError{Code: http.StatusServiceUnavailable, Message: message("registry store unavailable"), Internal: cause}
}

// toHTTPError maps any error a handler returns to the status and message
// the client sees. Store errors not mapped by the handler are 503 when the
// store is unreachable and 500 otherwise.
func toHTTPError(err error) *echo.HTTPError {
	var he *echo.HTTPError
	var mbe *http.MaxBytesError
	switch {
	case errors.As(err, &he):
		return he
	case errors.As(err, &mbe):
		return &echo.HTTPError{Code: http.StatusRequestEntityTooLarge,
			Message: message(fmt.Sprintf("request body too large (limit %d bytes)", mbe.Limit)), Internal: err}
	case errors.Is(err, registry.ErrUnavailable):
		return storeUnavailable(err)
	}
	return &echo.HTTPError{Code: http.StatusInternalServerError, Message: message("internal error"), Internal: err}
}

// handleError is the one place errors become JSON: {"error": "..."}.
func (srv *Server) handleError(err error, c echo.Context) {
	if c.Response().Committed {
		return
	}
	he := toHTTPError(err)
	body := map[string]any{}
	switch m := he.Message.(type) {
	case withBody:
		for k, v := range m.extra {
			body[k] = v
		}
		body["error"] = m.msg
	case message:
		body["error"] = string(m)
	case string:
		// Echo's own errors (404, 405) are capitalised; ours are not.
		body["error"] = strings.ToLower(m)
	default:
		body["error"] = strings.ToLower(fmt.Sprint(m))
	}
	switch {
	case he.Code == http.StatusServiceUnavailable && he.Internal != nil:
		srv.log.Error("registry store unavailable", "error", he.Internal, "path", c.Path())
	case he.Code >= 500 && (he.Code == http.StatusInternalServerError || he.Internal != nil):
		srv.log.Error("request failed", "error", errOf(he), "method", c.Request().Method, "path", c.Request().URL.Path)
	}
	if c.Request().Method == http.MethodHead {
		_ = c.NoContent(he.Code)
		return
	}
	_ = c.JSON(he.Code, body)
}

func errOf(he *echo.HTTPError) error {
	if he.Internal != nil {
		return he.Internal
	}
	return he
}
