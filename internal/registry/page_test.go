package registry_test

import (
	"fmt"
	"testing"

	"github.com/redis/go-redis/v9"

	"github.com/kong-service-registry/service-registry/internal/registry"
)

// TestListPages: paging routes and services by cursor sees, in order,
// every entry that exists throughout the listing exactly once, while
// entries come and go between pages.
func TestListPages(t *testing.T) {
	backends(t, func(t *testing.T, rdb redis.UniversalClient, p string) {
		c := ctx(t)
		s := registry.NewStore(rdb, registry.Options{Prefix: p})
		const n = 23
		for i := 0; i < n; i++ {
			host := fmt.Sprintf("h%02d.example", i%5)
			if _, _, err := s.RegisterRoute(c, registry.Route{Host: host, Path: fmt.Sprintf("/p%02d", i), Backend: "http://b:1"}); err != nil {
				t.Fatal(err)
			}
		}
		all, err := s.ListRoutes(c)
		if err != nil || len(all) != n {
			t.Fatalf("list: %d %v", len(all), err)
		}
		var got []registry.Route
		after := ""
		for pages := 0; ; pages++ {
			page, next, err := s.ListRoutesPage(c, after, 5)
			if err != nil {
				t.Fatal(err)
			}
			got = append(got, page...)
			if pages == 1 {
				// A route behind the cursor leaves, one ahead arrives.
				if _, err := s.DeregisterRoute(c, all[0].Host, all[0].Path); err != nil {
					t.Fatal(err)
				}
				if _, _, err := s.RegisterRoute(c, registry.Route{Host: "zz.example", Path: "/late", Backend: "http://b:1"}); err != nil {
					t.Fatal(err)
				}
			}
			if next == "" {
				break
			}
			after = next
		}
		if len(got) != n+1 {
			t.Fatalf("paged %d routes, want %d", len(got), n+1)
		}
		for i := range all {
			if got[i].Host != all[i].Host || got[i].Path != all[i].Path {
				t.Fatalf("route %d: %s%s, want %s%s", i, got[i].Host, got[i].Path, all[i].Host, all[i].Path)
			}
		}
		if last := got[n]; last.Host != "zz.example" {
			t.Fatalf("the late route is missing: %+v", last)
		}

		for i := 0; i < 12; i++ {
			tags := []string{"even"}
			if i%2 == 1 {
				tags = []string{"odd"}
			}
			name := fmt.Sprintf("svc-%02d", i)
			if _, err := s.PutInstance(c, name, registry.Instance{ID: "a", Address: "a:1"}); err != nil {
				t.Fatal(err)
			}
			if err := s.SetServiceTags(c, name, tags); err != nil {
				t.Fatal(err)
			}
		}
		var names []string
		after = ""
		for {
			page, next, err := s.ListServicesPage(c, []string{"odd"}, after, 2)
			if err != nil {
				t.Fatal(err)
			}
			if len(page) > 2 {
				t.Fatalf("page of %d, limit 2", len(page))
			}
			for _, svc := range page {
				names = append(names, svc.Name)
			}
			if next == "" {
				break
			}
			after = next
		}
		if fmt.Sprint(names) != "[svc-01 svc-03 svc-05 svc-07 svc-09 svc-11]" {
			t.Fatalf("odd services paged: %v", names)
		}
	})
}
