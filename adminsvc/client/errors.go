package client

import (
	"errors"
	"fmt"
	"net/http"
)

// Sentinel errors to test with errors.Is. An *APIError matches the one that
// fits its status; a call that never got an answer matches ErrUnavailable.
var (
	ErrBadRequest   = errors.New("bad request")
	ErrUnauthorized = errors.New("unauthorized")
	ErrNotFound     = errors.New("not found")
	ErrConflict     = errors.New("conflict")
	// ErrUnavailable means the registry could not be reached or answered 5xx
	// after every retry.
	ErrUnavailable = errors.New("registry unavailable")
)

// APIError is a non-2xx answer from the registry. Message is the contract's
// {"error": "..."} text when the body has one.
type APIError struct {
	Method     string
	Path       string
	StatusCode int
	Message    string
	// Body is the raw answer, capped, for callers that need more than Message
	// (e.g. /health's 503 body).
	Body []byte
}

func (e *APIError) Error() string {
	msg := e.Message
	if msg == "" {
		msg = http.StatusText(e.StatusCode)
	}
	return fmt.Sprintf("registry %s %s: %d %s", e.Method, e.Path, e.StatusCode, msg)
}

// Is lets errors.Is(err, ErrNotFound) and friends work on an *APIError.
func (e *APIError) Is(target error) bool {
	switch target {
	case ErrBadRequest:
		return e.StatusCode == http.StatusBadRequest || e.StatusCode == http.StatusRequestEntityTooLarge
	case ErrUnauthorized:
		return e.StatusCode == http.StatusUnauthorized || e.StatusCode == http.StatusForbidden
	case ErrNotFound:
		return e.StatusCode == http.StatusNotFound
	case ErrConflict:
		return e.StatusCode == http.StatusConflict
	case ErrUnavailable:
		return e.StatusCode >= 500
	}
	return false
}

// Temporary reports whether repeating the request may succeed: 5xx answers.
func (e *APIError) Temporary() bool { return e.StatusCode >= 500 }
