package registry

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/kong-service-registry/service-registry/internal/redistest"
)

// crashStore is a Store over a persistent (AOF, fsync always) redis-server
// that is killed at the named point of the next write; restart brings the
// same data back, as after a crash of Redis between the two steps of a write.
func crashStore(t *testing.T, point string, now func() time.Time) (*Store, *redistest.Server, context.Context) {
	srv := redistest.Start(t, redistest.Options{AppendFsync: "always"})
	rdb := srv.Client()
	t.Cleanup(func() { _ = rdb.Close() })
	s := NewStore(rdb, Options{Now: now})
	armed := true
	s.crashAt = func(p string) {
		if p == point && armed {
			armed = false
			srv.Kill()
		}
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	t.Cleanup(cancel)
	return s, srv, ctx
}

// Issue 13 defect 3: Redis killed after the route record was written and
// before the index was: the next read shows the route (it is registered;
// the client was told nothing either way), so /routes, /health, /v1 and Kong
// agree with the 409 a different backend gets.
func TestCrashAfterRouteRecordIsRepairedByTheNextRead(t *testing.T) {
	s, srv, ctx := crashStore(t, "record", nil)
	_, _, err := s.RegisterRoute(ctx, Route{Host: "ghost.test", Path: "/p", Backend: "http://10.0.0.1:80"})
	if !errors.Is(err, ErrUnavailable) {
		t.Fatalf("register with Redis killed between the steps: %v", err)
	}
	srv.Restart()
	routes, err := s.ListRoutes(ctx)
	if err != nil || len(routes) != 1 || routes[0].Backend != "http://10.0.0.1:80" {
		t.Fatalf("routes after the crash: %+v %v (want the stored route)", routes, err)
	}
	if n, err := s.CountRoutes(ctx); err != nil || n != 1 {
		t.Fatalf("count %d %v", n, err)
	}
	svcs, err := s.ListServices(ctx, nil)
	if err != nil || len(svcs) != 1 || svcs[0].Name != ServiceName("ghost.test", "/p") {
		t.Fatalf("services after the crash: %+v %v", svcs, err)
	}
	if _, _, err := s.RegisterRoute(ctx, Route{Host: "ghost.test", Path: "/p", Backend: "http://10.0.0.2:80"}); !errors.Is(err, ErrRouteExists) {
		t.Fatalf("other backend: %v, want ErrRouteExists for a route every reader shows", err)
	}
}

// The same crash point for a /v1 instance that creates its service: the
// service listing shows it after the restart.
func TestCrashAfterInstanceRecordIsRepairedByTheNextRead(t *testing.T) {
	s, srv, ctx := crashStore(t, "record", nil)
	if _, err := s.PutInstance(ctx, "orders", Instance{ID: "a", Address: "10.0.0.1:80", Weight: 1}); !errors.Is(err, ErrUnavailable) {
		t.Fatalf("put with Redis killed between the steps: %v", err)
	}
	srv.Restart()
	svcs, err := s.ListServices(ctx, nil)
	if err != nil || len(svcs) != 1 || len(svcs[0].Instances) != 1 {
		t.Fatalf("services after the crash: %+v %v (want orders with its instance)", svcs, err)
	}
}

// Killed after the journal note, before any record: nothing is shown, the
// route is free for another backend, and the note is repaired on every read
// until it is older than pendingGrace, then removed.
func TestCrashAfterJournalNoteLeavesNothing(t *testing.T) {
	now := time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC)
	s, srv, ctx := crashStore(t, "journal", func() time.Time { return now })
	if _, _, err := s.RegisterRoute(ctx, Route{Host: "ghost.test", Path: "/p", Backend: "http://10.0.0.1:80"}); !errors.Is(err, ErrUnavailable) {
		t.Fatalf("register with Redis killed after the note: %v", err)
	}
	srv.Restart()
	if routes, err := s.ListRoutes(ctx); err != nil || len(routes) != 0 {
		t.Fatalf("routes: %+v %v", routes, err)
	}
	if _, created, err := s.RegisterRoute(ctx, Route{Host: "ghost.test", Path: "/p", Backend: "http://10.0.0.2:80"}); err != nil || !created {
		t.Fatalf("other backend after the crash: created=%v %v", created, err)
	}
	pending := s.keys.index("pending")
	if n, _ := s.rdb.ZCard(ctx, pending).Result(); n != 1 {
		t.Fatalf("journal holds %d notes, want the crashed one (young, kept)", n)
	}
	now = now.Add(pendingGrace + time.Second)
	if n, err := s.CountRoutes(ctx); err != nil || n != 1 {
		t.Fatalf("count %d %v", n, err)
	}
	if n, _ := s.rdb.ZCard(ctx, pending).Result(); n != 0 {
		t.Fatalf("journal holds %d notes after the grace period", n)
	}
}
