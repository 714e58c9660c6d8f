package translator

import (
	"encoding/json"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
)

// TestForRouteMatchesTranslate holds the fast path to the dedicated route:
// for every golden route, ForRoute returns what the golden output (Kong's
// entities) says, read from the checked-in files, not from ForRoute's code.
func TestForRouteMatchesTranslate(t *testing.T) {
	dirs, _ := filepath.Glob("testdata/golden/*")
	checked := 0
	for _, dir := range dirs {
		var in goldenInput
		var out State
		readJSON(t, filepath.Join(dir, "in"), &in)
		readJSON(t, filepath.Join(dir, "out"), &out)
		if in.Options.PluginScope == PluginScopeGlobal {
			// The route's services hold no service-registry plugin in
			// global scope; ForRoute answers as in service scope, which
			// TestGlobalScopeOnlyMovesTheRegistryPlugin holds to this one.
			opts := in.Options
			opts.PluginScope = PluginScopeService
			out = asState(t, Translate(in.Routes, opts))
		}
		byName := map[string]Service{}
		for _, s := range out.Services {
			byName[s.Name] = s
		}
		for _, ri := range in.Routes {
			svc, ok := byName[ri.Service]
			got, err := ForRoute(ri.Route, ri.Service, in.Options)
			if !ok {
				if err == nil {
					t.Errorf("%s: %s: Translate refused it, ForRoute did not", dir, ri.Service)
				}
				continue
			}
			if err != nil {
				t.Fatalf("%s: %s: %v", dir, ri.Service, err)
			}
			checked++
			want := RouteServing{Service: svc.Name, ServiceID: svc.ID, PluginID: svc.Plugins[0].ID, Protocol: svc.Protocol, Path: svc.Path,
				PreserveHost: svc.Routes[0].PreserveHost, Config: svc.Plugins[0].Config, Headers: transformerHeaders(svc)}
			// Round-trip through JSON: the golden file has float64 numbers.
			if g, w := asJSON(t, got), asJSON(t, want); !reflect.DeepEqual(g, w) {
				t.Errorf("%s: %s:\n got %v\nwant %v", dir, ri.Service, g, w)
			}
		}
	}
	if checked < 10 {
		t.Fatalf("only %d routes checked", checked)
	}
}

func transformerHeaders(s Service) map[string]string {
	var h map[string]string
	for _, p := range s.Plugins {
		if p.Name != PluginResponseTransformer {
			continue
		}
		add, _ := p.Config["add"].(map[string]any)
		list, _ := add["headers"].([]any)
		h = map[string]string{}
		for _, item := range list {
			k, v, _ := strings.Cut(item.(string), ":")
			h[k] = v
		}
	}
	return h
}

func readJSON(t *testing.T, path string, v any) {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	if err := json.Unmarshal(b, v); err != nil {
		t.Fatalf("%s: %v", path, err)
	}
}

// asState round-trips st through JSON, as if read from a golden file.
func asState(t *testing.T, st State) State {
	t.Helper()
	b, err := json.Marshal(st)
	if err != nil {
		t.Fatal(err)
	}
	var out State
	if err := json.Unmarshal(b, &out); err != nil {
		t.Fatal(err)
	}
	return out
}

func asJSON(t *testing.T, v any) any {
	t.Helper()
	b, err := json.Marshal(v)
	if err != nil {
		t.Fatal(err)
	}
	var out any
	_ = json.Unmarshal(b, &out)
	return out
}
