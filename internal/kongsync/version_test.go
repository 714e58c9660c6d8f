package kongsync_test

import (
	"testing"
)

// Kong 3.4.2 answers GET /tags/{tag} with {"data":{},"next":null} when no
// entity carries the tag (Lua's empty table); 3.9.3 answers "data":[]. A
// fresh Kong, or one where nothing managed is left, must still sync
// (issue 13 defect 0).
func TestDBModeSyncsToFreshKongOfEachVersion(t *testing.T) {
	for _, version := range []string{"3.4.2", "3.9.3"} {
		t.Run(version, func(t *testing.T) {
			e := newEnvVersion(t, false, "", version)
			e.register("api.example.com", "/v1", "http://api-v1:8080", "")
			res := e.reconcile()
			if res.Created == 0 {
				t.Fatalf("first reconcile created nothing: %+v", res)
			}
			if _, ok := e.kong.Find("routes", "sr-api.example.com_v1"); !ok {
				t.Fatalf("route not in kong: %v", e.kong.List("routes"))
			}
			// Nothing managed left: the tag lists nothing again.
			if _, err := e.store.DeregisterRoute(t.Context(), "api.example.com", "/v1"); err != nil {
				t.Fatal(err)
			}
			e.reconcile()
			e.reconcile()
			if n := len(e.kong.List("routes")); n != 0 {
				t.Fatalf("routes left: %d", n)
			}
		})
	}
}
