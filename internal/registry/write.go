// Every write is two steps (doc.go, "Atomicity across slots"): a script on
// the service's slot changes the records, then a script on the index slot
// applies the state it left to the global indexes. This file runs both.

package registry

import (
	"context"
	"fmt"

	"github.com/redis/go-redis/v9"
)

// result is the decoded reply of a per-service script.
type result struct {
	code        int64
	version     int64
	exists      bool
	member      string
	routeExists bool
	extra       string
	lease       string // first lease end, unix ms; "0" for none
}

func (s *Store) run(ctx context.Context, op string, sc *redis.Script, service string, args ...any) (result, error) {
	if err := s.EnsureSchema(ctx); err != nil {
		return result{}, err
	}
	argv := append([]any{s.keys.channel(), service}, args...)
	raw, err := sc.Run(ctx, s.rdb, s.keys.serviceKeys(service), argv...).Slice()
	if err != nil {
		return result{}, unavailable(op, err)
	}
	r, err := decodeResult(raw)
	if err != nil {
		return result{}, fmt.Errorf("registry: %s: %w", op, err)
	}
	if r.code == codeOK && r.version > 0 {
		// The write is done; the indexes follow. A failure here leaves an
		// index entry missing or dangling, which readers tolerate and repair.
		if err := s.applyIndex(ctx, service, r); err != nil {
			return r, err
		}
	}
	return r, nil
}

func decodeResult(raw []any) (result, error) {
	if len(raw) < 6 {
		return result{}, fmt.Errorf("unexpected script reply %v", raw)
	}
	var r result
	var ok [6]bool
	r.code, ok[0] = raw[0].(int64)
	r.version, ok[1] = raw[1].(int64)
	var e, re int64
	e, ok[2] = raw[2].(int64)
	r.member, ok[3] = raw[3].(string)
	re, ok[4] = raw[4].(int64)
	r.extra, ok[5] = raw[5].(string)
	for _, b := range ok {
		if !b {
			return result{}, fmt.Errorf("unexpected script reply %v", raw)
		}
	}
	r.exists, r.routeExists = e == 1, re == 1
	r.lease = "0"
	if len(raw) > 6 {
		if l, ok := raw[6].(string); ok && l != "" {
			r.lease = l
		}
	}
	return r, nil
}

func (s *Store) applyIndex(ctx context.Context, service string, r result) error {
	err := indexScript.Run(ctx, s.rdb, s.keys.indexKeys(),
		service, r.version, b2i(r.exists), r.member, b2i(r.routeExists), r.lease).Err()
	if err != nil {
		return unavailable("index", err)
	}
	return nil
}

// reindex re-applies a service's current state to the indexes; member is the
// route index entry to correct when the route record is gone.
func (s *Store) reindex(ctx context.Context, service, member string) error {
	raw, err := stateScript.Run(ctx, s.rdb, s.keys.serviceKeys(service), s.keys.channel(), service).Slice()
	if err != nil {
		return unavailable("reindex", err)
	}
	r, err := decodeResult(raw)
	if err != nil {
		return fmt.Errorf("registry: reindex: %w", err)
	}
	if r.member == "" {
		r.member = member
	}
	return s.applyIndex(ctx, service, r)
}

func b2i(b bool) int {
	if b {
		return 1
	}
	return 0
}

func codeErr(code int64) error {
	switch code {
	case codeRouteExists:
		return ErrRouteExists
	case codeRouteNotFound:
		return ErrRouteNotFound
	case codeServiceNotFound:
		return ErrServiceNotFound
	case codeInstanceNotFound:
		return ErrInstanceNotFound
	}
	return fmt.Errorf("registry: unexpected script status %d", code)
}
