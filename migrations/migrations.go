package migrations

import (
	"context"
	"errors"
	"fmt"
	"strconv"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/kong-service-registry/service-registry/internal/registry"
)

// Migration is one keyspace step. Up must be idempotent.
type Migration struct {
	Version int
	Name    string
	Up      func(ctx context.Context, rdb redis.UniversalClient, prefix string) error
}

// All are the known migrations, in version order.
var All = []Migration{
	{Version: 1, Name: "v1 keyspace: per-service hashes under {service} hash tags, global indexes under {_index}",
		Up: func(context.Context, redis.UniversalClient, string) error {
			// v1 is the first layout: nothing to convert, the marker is all.
			return nil
		}},
}

// Latest is the version this binary writes.
func Latest() int { return All[len(All)-1].Version }

// ErrNewerKeyspace means Redis holds a keyspace from a newer release.
var ErrNewerKeyspace = errors.New("registry keyspace is newer than this adminsvc")

// SchemaKey is where the keyspace version lives: the registry's key.
func SchemaKey(prefix string) string { return registry.SchemaKey(prefix) }

func lockKey(prefix string) string { return prefix + ":v1:meta:migrate-lock" }

// Current returns the keyspace version (0: empty or never migrated).
func Current(ctx context.Context, rdb redis.UniversalClient, prefix string) (int, error) {
	s, err := rdb.Get(ctx, SchemaKey(prefix)).Result()
	if errors.Is(err, redis.Nil) {
		return 0, nil
	}
	if err != nil {
		return 0, fmt.Errorf("reading keyspace version: %w", err)
	}
	v, err := strconv.Atoi(s)
	if err != nil {
		return 0, fmt.Errorf("keyspace version %q is not a number", s)
	}
	return v, nil
}

// Status describes the keyspace against this binary.
type Status struct {
	Current int
	Latest  int
	Pending []Migration
}

// GetStatus reports the current version and the migrations Up would run.
func GetStatus(ctx context.Context, rdb redis.UniversalClient, prefix string) (Status, error) {
	cur, err := Current(ctx, rdb, prefix)
	if err != nil {
		return Status{}, err
	}
	st := Status{Current: cur, Latest: Latest()}
	if cur > st.Latest {
		return st, fmt.Errorf("%w: keyspace v%d, this binary knows up to v%d", ErrNewerKeyspace, cur, st.Latest)
	}
	for _, m := range All {
		if m.Version > cur {
			st.Pending = append(st.Pending, m)
		}
	}
	return st, nil
}

// Up applies the pending migrations in order and returns them.
func Up(ctx context.Context, rdb redis.UniversalClient, prefix string) ([]Migration, error) {
	// One migrator at a time; the lock expires if its holder dies.
	ok, err := rdb.SetNX(ctx, lockKey(prefix), "1", time.Minute).Result()
	if err != nil {
		return nil, fmt.Errorf("taking the migration lock: %w", err)
	}
	if !ok {
		return nil, errors.New("another process is running migrations (lock " + lockKey(prefix) + ")")
	}
	defer rdb.Del(context.WithoutCancel(ctx), lockKey(prefix))
	st, err := GetStatus(ctx, rdb, prefix)
	if err != nil {
		return nil, err
	}
	var done []Migration
	for _, m := range st.Pending {
		if err := m.Up(ctx, rdb, prefix); err != nil {
			return done, fmt.Errorf("migration %d (%s): %w", m.Version, m.Name, err)
		}
		if err := rdb.Set(ctx, SchemaKey(prefix), strconv.Itoa(m.Version), 0).Err(); err != nil {
			return done, fmt.Errorf("recording migration %d: %w", m.Version, err)
		}
		done = append(done, m)
	}
	return done, nil
}
