package migrations

import (
	"context"
	"errors"
	"testing"

	"github.com/kong-service-registry/service-registry/internal/redistest"
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
