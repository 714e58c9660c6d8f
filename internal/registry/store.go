package registry

import (
	"context"
	"errors"
	"fmt"
	"sync/atomic"
	"time"

	"github.com/redis/go-redis/v9"
)

// MaxWeight is the largest instance weight (Kong's target weight range).
const MaxWeight = 65535

// SchemaVersion is the keyspace version this code reads and writes.
const SchemaVersion = "1"

// ErrInvalid is returned for input the store refuses (empty names, weights
// out of range). The API layer validates first; this is the last line.
var ErrInvalid = errors.New("invalid registry input")

// Options configures a Store. The zero value is usable.
type Options struct {
	// Prefix of every key; default "sr".
	Prefix string
	// Now is the clock for timestamps and lease expiry; default time.Now.
	Now func() time.Time
}

// Change is one message of the change feed: Service is now at Version.
type Change struct {
	Service string
	Version int64
}

// Store reads and writes the registry in Redis (standalone, Sentinel or
// Cluster through redis.UniversalClient). It is safe for concurrent use.
type Store struct {
	rdb        redis.UniversalClient
	keys       keyspace
	now        func() time.Time
	schemaDone atomic.Bool
	// crashAt, set by tests only, runs at the named point of a write
	// ("journal": after the pending note; "record": after the service
	// script, before the index script) so a test can stop Redis exactly there.
	crashAt func(point string)
}

// NewStore returns a Store over rdb. It does not talk to Redis.
func NewStore(rdb redis.UniversalClient, o Options) *Store {
	if o.Prefix == "" {
		o.Prefix = "sr"
	}
	if o.Now == nil {
		o.Now = time.Now
	}
	return &Store{rdb: rdb, keys: keyspace{prefix: o.Prefix}, now: o.Now}
}

// Prefix returns the key prefix in use.
func (s *Store) Prefix() string { return s.keys.prefix }

// Channel returns the pub/sub channel of the change feed.
func (s *Store) Channel() string { return s.keys.channel() }

// VersionKey returns the Redis key holding a service's version (for readers
// that batch their own commands, like the discovery cache).
func (s *Store) VersionKey(service string) string { return s.keys.svc(service, "version") }

func unavailable(op string, err error) error {
	return fmt.Errorf("registry: %s: %w: %w", op, ErrUnavailable, err)
}

// InputError is the detail of an ErrInvalid: the input field (by its JSON
// name) and why, fit to show to an API client as "field: why".
type InputError struct {
	Field string
	Msg   string
}

func (e *InputError) Error() string { return e.Field + ": " + e.Msg }

// Unwrap makes errors.Is(err, ErrInvalid) hold.
func (e *InputError) Unwrap() error { return ErrInvalid }

func invalid(field, format string, a ...any) error {
	return fmt.Errorf("registry: %w", &InputError{Field: field, Msg: fmt.Sprintf(format, a...)})
}

func invalidName(name string) error {
	if err := CheckServiceName(name); err != nil {
		return fmt.Errorf("registry: %w", &InputError{Field: "name", Msg: err.Error()})
	}
	return nil
}

// Ping checks that Redis answers.
func (s *Store) Ping(ctx context.Context) error {
	if err := s.rdb.Ping(ctx).Err(); err != nil {
		return unavailable("ping", err)
	}
	return nil
}

// EnsureSchema writes the keyspace version when the key is empty. Writes call
// it once per Store; migrations/ owns moving it forward.
func (s *Store) EnsureSchema(ctx context.Context) error {
	if s.schemaDone.Load() {
		return nil
	}
	if err := s.rdb.SetNX(ctx, s.keys.schema(), SchemaVersion, 0).Err(); err != nil {
		return unavailable("schema", err)
	}
	s.schemaDone.Store(true)
	return nil
}

// ServiceVersion returns a service's version (0 when never written). It
// keeps growing across deletion and re-creation.
func (s *Store) ServiceVersion(ctx context.Context, name string) (int64, error) {
	v, err := s.rdb.Get(ctx, s.keys.svc(name, "version")).Int64()
	if errors.Is(err, redis.Nil) {
		return 0, nil
	}
	if err != nil {
		return 0, unavailable("service version", err)
	}
	return v, nil
}

// Generation returns a counter bumped by every write anywhere in the registry.
func (s *Store) Generation(ctx context.Context) (int64, error) {
	v, err := s.rdb.Get(ctx, s.keys.index("generation")).Int64()
	if errors.Is(err, redis.Nil) {
		return 0, nil
	}
	if err != nil {
		return 0, unavailable("generation", err)
	}
	return v, nil
}
