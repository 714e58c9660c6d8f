package kongfake

import (
	"bytes"
	"encoding/json"
	"net/http"
	"testing"
)

// The fast path's catch-all as adminsvc writes it (issue 16), stored the
// way real Kong 3.4.2 (Postgres) stored it: the route sent without hosts
// has hosts null; hosts given as [] come back as [] and a PUT without the
// key makes them null again; unset lists (methods, headers, snis) are null;
// a methods-only route has null hosts and paths. The service-registry plugin with fast_path: true is
// accepted by the -dump schema; a non-boolean fast_path is refused.
func TestFastPathCatchAllStoredAsReal(t *testing.T) {
	f := Start(t, Options{Plugins: map[string]PluginSchema{"service-registry": RegistrySchema(t)}})
	call := func(method, path string, body any) (int, map[string]any) {
		t.Helper()
		b, _ := json.Marshal(body)
		req, _ := http.NewRequest(method, f.URL()+path, bytes.NewReader(b))
		req.Header.Set("Content-Type", "application/json")
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		var out map[string]any
		_ = json.NewDecoder(resp.Body).Decode(&out)
		return resp.StatusCode, out
	}
	tags := []string{"managed-by:service-registry", "sr-fast-path"}
	if code, b := call("PUT", "/services/sr-fast-path", map[string]any{"host": "sr-fast-path.upstream", "port": 80, "protocol": "http", "tags": tags}); code != 200 {
		t.Fatalf("service: %d %v", code, b)
	}
	catchAll := map[string]any{"service": map[string]any{"name": "sr-fast-path"}, "protocols": []string{"http", "https"},
		"paths": []string{"/"}, "strip_path": false, "preserve_host": true, "tags": tags}
	code, rt := call("PUT", "/routes/sr-fast-path", catchAll)
	if code != 200 {
		t.Fatalf("route: %d %v", code, rt)
	}
	if v, ok := rt["hosts"]; !ok || v != nil || rt["methods"] != nil || rt["headers"] != nil || rt["snis"] != nil {
		t.Fatalf("catch-all route stored as %v", rt)
	}
	catchAll["hosts"] = []string{}
	if _, rt = call("PUT", "/routes/sr-fast-path", catchAll); !isEmptyList(rt["hosts"]) {
		t.Fatalf("hosts [] stored as %v", rt["hosts"])
	}
	delete(catchAll, "hosts")
	if _, rt = call("PUT", "/routes/sr-fast-path", catchAll); rt["hosts"] != nil {
		t.Fatalf("PUT without hosts after []: hosts %v", rt["hosts"])
	}
	if _, rt = call("GET", "/routes/sr-fast-path", nil); rt["hosts"] != nil {
		t.Fatalf("GET: hosts %v", rt["hosts"])
	}
	if _, m := call("PUT", "/routes/op-m", map[string]any{"service": map[string]any{"name": "sr-fast-path"}, "methods": []string{"PUT"}}); m["hosts"] != nil || m["paths"] != nil {
		t.Fatalf("methods-only route stored as %v", m)
	}
	code, p := call("POST", "/services/sr-fast-path/plugins", map[string]any{"name": "service-registry", "tags": tags,
		"config": map[string]any{"registry": "redis", "fast_path": true, "redis": map[string]any{"host": "127.0.0.1", "port": 6379}}})
	if code != 201 || p["config"].(map[string]any)["fast_path"] != true {
		t.Fatalf("catch-all plugin: %d %v", code, p)
	}
	if code, b := call("POST", "/plugins", map[string]any{"name": "service-registry", "config": map[string]any{"registry": "redis", "fast_path": "yes"}}); code != 400 {
		t.Fatalf("fast_path \"yes\" accepted: %d %v", code, b)
	}
}

func isEmptyList(v any) bool {
	l, ok := v.([]any)
	return ok && len(l) == 0
}
