package migrations

import (
	"context"
	"errors"
	"strconv"
	"testing"

	"github.com/kong-service-registry/service-registry/internal/redistest"
	"github.com/kong-service-registry/service-registry/internal/registry"
)

func TestUpStatusAndNewerKeyspace(t *testing.T) {
	rs := redistest.Start(t, redistest.Options{})
	rdb := rs.Client()
	ctx := context.Background()
	st, err := GetStatus(ctx, rdb, "sr")
	if err != nil || st.Current != 0 || len(st.Pending) != len(All) {
		t.Fatalf("fresh status: %+v %v", st, err)
	}
	done, err := Up(ctx, rdb, "sr")
	if err != nil || len(done) != len(All) {
		t.Fatalf("up: %v %v", done, err)
	}
	if v, _ := rdb.Get(ctx, "sr:v1:meta:schema").Result(); v != "1" {
		t.Fatalf("marker %q", v)
	}
	if done, err := Up(ctx, rdb, "sr"); err != nil || len(done) != 0 {
		t.Fatalf("second up: %v %v", done, err)
	}
	rdb.Set(ctx, "sr:v1:meta:schema", "99", 0)
	if _, err := Up(ctx, rdb, "sr"); !errors.Is(err, ErrNewerKeyspace) {
		t.Fatalf("newer keyspace: %v", err)
	}
	if _, err := GetStatus(ctx, rdb, "other"); err != nil {
		t.Fatalf("prefixes are separate: %v", err)
	}
}

// The registry writes and reads one keyspace version; the migrations must
// end exactly there, under the same key: a store that marks a fresh Redis
// leaves nothing pending, and a migrated Redis is what the store expects.
func TestLatestIsTheRegistrysVersion(t *testing.T) {
	if want, _ := strconv.Atoi(registry.SchemaVersion); Latest() != want {
		t.Fatalf("migrations end at v%d, the registry reads and writes v%s", Latest(), registry.SchemaVersion)
	}
	rs := redistest.Start(t, redistest.Options{})
	rdb := rs.Client()
	ctx := context.Background()
	if err := registry.NewStore(rdb, registry.Options{Prefix: "p"}).EnsureSchema(ctx); err != nil {
		t.Fatal(err)
	}
	st, err := GetStatus(ctx, rdb, "p")
	if err != nil || st.Current != Latest() || len(st.Pending) != 0 {
		t.Fatalf("status of a keyspace the registry marked: %+v %v", st, err)
	}
}
