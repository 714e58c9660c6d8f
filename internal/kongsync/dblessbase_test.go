package kongsync_test

import (
	"context"
	"testing"
)

// Without SR_KONG_BASE_CONFIG, a DB-less push keeps what Kong serves that is
// not ours: the operator's entities survive (issue 13 defect 4).
func TestDBLessWithoutBaseKeepsKongsOwnEntities(t *testing.T) {
	for _, version := range []string{"3.4.2", "3.9.3"} {
		t.Run(version, func(t *testing.T) {
			e := newEnvVersion(t, true, "", version)
			operator := map[string]any{
				"_format_version": "3.0",
				"services": []any{map[string]any{"name": "operator-svc", "url": "http://127.0.0.1:9",
					"routes": []any{map[string]any{"name": "operator-route", "paths": []any{"/op"}}}}},
				"upstreams": []any{map[string]any{"name": "op-up", "targets": []any{map[string]any{"target": "127.0.0.1:9"}}}},
				"plugins":   []any{map[string]any{"name": "response-transformer", "config": map[string]any{"add": map[string]any{"headers": []any{"x-op:1"}}}}},
			}
			if code, body := e.kongCall("POST", "/config", operator); code != 201 {
				t.Fatalf("loading the operator's config: %d %v", code, body)
			}
			e.register("api.example.com", "/v1", "http://api-v1:8080", "")
			if res := e.reconcile(); !res.Pushed {
				t.Fatalf("no push: %+v", res)
			}
			for kind, name := range map[string]string{"services": "operator-svc", "routes": "operator-route", "upstreams": "op-up"} {
				if _, ok := e.kong.Find(kind, name); !ok {
					t.Errorf("the push dropped the operator's %s %s", kind, name)
				}
			}
			if n := len(e.kong.List("targets")); n != 2 {
				t.Errorf("targets: %d, want the operator's and ours", n)
			}
			if _, ok := e.kong.Find("routes", "sr-api.example.com_v1"); !ok {
				t.Fatal("our route is not in kong")
			}
			// A second registration: ours from the registry, theirs from Kong,
			// nothing of ours twice.
			e.register("api.example.com", "/v2", "http://api-v2:8080", "")
			if _, err := e.rec.ApplyChangesOnce(context.Background()); err != nil {
				t.Fatal(err)
			}
			if n := len(e.kong.List("services")); n != 3 {
				t.Fatalf("services: %d, want 3", n)
			}
			if _, ok := e.kong.Find("services", "operator-svc"); !ok {
				t.Fatal("the second push dropped the operator's service")
			}
		})
	}
}
