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
	return s.runToken(ctx, op, sc, service, "", args...)
}

// runJournaled is run for the writes that can add a service or a route to
// the indexes (a registration, an instance that may create its service). It
// notes the write in the pending journal first, so a crash between the two
// steps leaves an entry that the next read repairs (see pending.go); the
// index step removes it. It returns the token for the caller to settle when
// the script changed nothing (dropToken, or reindex with it).
func (s *Store) runJournaled(ctx context.Context, op string, sc *redis.Script, service string, args ...any) (result, string, error) {
	if err := s.EnsureSchema(ctx); err != nil {
		return result{}, "", err
	}
	token, err := s.journal(ctx, op, service)
	if err != nil {
		return result{}, "", err
	}
	if s.crashAt != nil {
		s.crashAt("journal")
	}
	r, err := s.runToken(ctx, op, sc, service, token, args...)
	return r, token, err
}

func (s *Store) runToken(ctx context.Context, op string, sc *redis.Script, service, token string, args ...any) (result, error) {
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
	if s.crashAt != nil {
		s.crashAt("record")
	}
	if r.code == codeOK && r.version > 0 {
		// The write is done; the indexes follow. A failure here leaves an
		// index entry missing or dangling, which readers repair: a dangling
		// entry when they meet it, a missing one through the journal.
		if _, err := s.applyIndex(ctx, service, r, token); err != nil {
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

// applyIndex runs step 2 for the state r; changed says whether an index
// membership (service, route) changed. token is the writer's journal entry
// to remove ("" for none).
func (s *Store) applyIndex(ctx context.Context, service string, r result, token string) (changed bool, err error) {
	n, err := indexScript.Run(ctx, s.rdb, s.keys.indexKeys(),
		service, r.version, b2i(r.exists), r.member, b2i(r.routeExists), r.lease, token).Int()
	if err != nil {
		return false, unavailable("index", err)
	}
	return n > 0, nil
}

// reindex re-applies a service's current state to the indexes; member is the
// route index entry to correct when the route record is gone, token a
// journal entry to remove ("" for none).
func (s *Store) reindex(ctx context.Context, service, member, token string) (changed bool, err error) {
	raw, err := stateScript.Run(ctx, s.rdb, s.keys.serviceKeys(service), s.keys.channel(), service).Slice()
	if err != nil {
		return false, unavailable("reindex", err)
	}
	r, err := decodeResult(raw)
	if err != nil {
		return false, fmt.Errorf("registry: reindex: %w", err)
	}
	if r.member == "" {
		r.member = member
	}
	return s.applyIndex(ctx, service, r, token)
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
	case codeServiceOfRoute:
		return ErrServiceOfRoute
	}
	return fmt.Errorf("registry: unexpected script status %d", code)
}
