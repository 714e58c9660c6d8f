package kongsync_test

import (
	"context"
	"testing"
	"time"

	"github.com/kong-service-registry/service-registry/internal/kongsync"
	"github.com/kong-service-registry/service-registry/internal/redistest"
	"github.com/kong-service-registry/service-registry/internal/registry"
	"github.com/kong-service-registry/service-registry/tests/kongfake"
)

// rejectingSchema refuses the service-registry config of one service, the
// way Kong refuses an entity its schema does not accept.
type rejectingSchema struct{ service string }

func (r rejectingSchema) Validate(c map[string]any) (map[string]any, map[string]any) {
	if c["service"] == r.service {
		return nil, map[string]any{"service": "refused for the test"}
	}
	return c, nil
}

// In DB-less mode a route Kong refuses does not keep the others out: the
// config is pushed again without it and the refusal is reported.
func TestDBLessRefusedRouteDoesNotBlockOthers(t *testing.T) {
	rs := redistest.Start(t, redistest.Options{})
	store := registry.NewStore(rs.Client(), registry.Options{})
	bad := registry.ServiceName("bad.example.com", "/")
	fake := kongfake.Start(t, kongfake.Options{DBLess: true, Plugins: map[string]kongfake.PluginSchema{"service-registry": rejectingSchema{bad}}})
	s, err := kongsync.NewSyncer(kongsync.Options{AdminURL: fake.URL()})
	if err != nil {
		t.Fatal(err)
	}
	rec, err := kongsync.NewReconciler(kongsync.ReconcilerOptions{Source: store, Syncer: s, Redis: rs.Client()})
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	for _, h := range []string{"good.example.com", "bad.example.com", "fine.example.com"} {
		if _, _, err := store.RegisterRoute(ctx, registry.Route{Host: h, Path: "/", Backend: "http://x:1"}); err != nil {
			t.Fatal(err)
		}
	}
	res, err := rec.ReconcileOnce(ctx)
	if err != nil {
		t.Fatalf("reconcile: %v", err)
	}
	if len(res.Refused) != 1 || res.Refused[0].Name != bad || !res.Pushed {
		t.Fatalf("result %+v", res)
	}
	for _, h := range []string{"good", "fine"} {
		if _, ok := fake.Find("services", registry.ServiceName(h+".example.com", "/")); !ok {
			t.Fatalf("%s route blocked by the refused one", h)
		}
	}
	if _, ok := fake.Find("services", bad); ok {
		t.Fatal("refused route in kong")
	}
	// Nothing changed: no push loop.
	pushes := fake.ConfigPushes()
	if _, err := rec.ReconcileOnce(ctx); err != nil || fake.ConfigPushes() != pushes {
		t.Fatalf("pushed again: %v %d→%d", err, pushes, fake.ConfigPushes())
	}
	// Still refused while the config stays the same: /health keeps naming it.
	if _, err := rec.ApplyChangesOnce(ctx); err != nil {
		t.Fatal(err)
	}
	if st := s.Status(); len(st.Refused) != 1 || st.Refused[0].Name != bad || st.RefusedSince.IsZero() || st.Healthy() {
		t.Fatalf("status: %+v", st)
	}
}

// In DB mode an entity Kong refuses (400) is reported, in the result and in
// Syncer.Status with the time Kong started refusing, while every other
// entity is applied and the apply succeeds: one bad route does not keep
// pending_changes from reaching 0 (issue 13 defect 2).
func TestDBModeRefusedEntityVisibleOthersApplied(t *testing.T) {
	rs := redistest.Start(t, redistest.Options{})
	store := registry.NewStore(rs.Client(), registry.Options{})
	bad := registry.ServiceName("bad.example.com", "/")
	fake := kongfake.Start(t, kongfake.Options{Plugins: map[string]kongfake.PluginSchema{"service-registry": rejectingSchema{bad}}})
	clock := time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC)
	s, err := kongsync.NewSyncer(kongsync.Options{AdminURL: fake.URL(), Attempts: 1, Now: func() time.Time { return clock }})
	if err != nil {
		t.Fatal(err)
	}
	rec, err := kongsync.NewReconciler(kongsync.ReconcilerOptions{Source: store, Syncer: s, Redis: rs.Client()})
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	for _, h := range []string{"good.example.com", "bad.example.com"} {
		if _, _, err := store.RegisterRoute(ctx, registry.Route{Host: h, Path: "/", Backend: "http://" + h + ":80"}); err != nil {
			t.Fatal(err)
		}
	}
	res, err := rec.ReconcileOnce(ctx)
	if err != nil {
		t.Fatalf("a refused entity failed the whole apply: %v", err)
	}
	if len(res.Refused) != 1 || res.Refused[0].Kind != "plugins" || res.Refused[0].Message == "" {
		t.Fatalf("refused: %+v", res.Refused)
	}
	if _, ok := fake.Find("routes", registry.ServiceName("good.example.com", "/")); !ok {
		t.Fatal("the good route was not applied")
	}
	st := s.Status()
	if st.Healthy() || len(st.Refused) != 1 || !st.RefusedSince.Equal(clock) || st.LastError != "" {
		t.Fatalf("status: %+v", st)
	}
	clock = clock.Add(time.Minute)
	if _, err := rec.ReconcileOnce(ctx); err != nil {
		t.Fatal(err)
	}
	if st := s.Status(); !st.RefusedSince.Equal(clock.Add(-time.Minute)) || !st.LastSuccess.Equal(clock) {
		t.Fatalf("refused since moved, or last success not recorded: %+v", st)
	}
	if st := rec.Stats(); st.LastError != "" || st.Errors != 0 {
		t.Fatalf("reconciler saw errors: %+v", st)
	}
	if _, err := store.DeregisterRoute(ctx, "bad.example.com", "/"); err != nil {
		t.Fatal(err)
	}
	if _, err := rec.ApplyChangesOnce(ctx); err != nil {
		t.Fatal(err)
	}
	if st := s.Status(); !st.Healthy() || !st.RefusedSince.IsZero() {
		t.Fatalf("status after the bad route left: %+v", st)
	}
}
