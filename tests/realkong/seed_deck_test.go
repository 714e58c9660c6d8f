package realkong

import (
	"encoding/json"
	"os"
	"os/exec"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/kong-service-registry/service-registry/internal/redistest"
	"github.com/kong-service-registry/service-registry/internal/translator"
)

// The seed tutorial's exact call, form-encoded as curl -d sends it:
// Kong accepts it and fills in every default the plugin's -dump declares;
// a bad config is refused with Kong's 400 (code 2) and the same field
// messages as the harness gives (e2e TestBadConfigRefusedByKong).
func TestSeedPluginCallAndBadConfigDBMode(t *testing.T) {
	eachKong(t, modeDB, func(t *testing.T, k *kong) {
		var created map[string]any
		if err := k.admin0("POST", "/plugins", "application/x-www-form-urlencoded",
			strings.NewReader("name=service-registry&config.registry=kong"), &created); err != nil {
			t.Fatalf("seed call refused: %v", err)
		}
		cfg, _ := created["config"].(map[string]any)
		if cfg["registry"] != "kong" {
			t.Fatalf("config %v", cfg)
		}
		n := checkDefaults(t, "config", dumpedConfigFields(t), cfg)
		if n < 10 {
			t.Fatalf("only %d defaults declared by -dump: the schema lost them", n)
		}

		err := k.adminJSON("POST", "/plugins", map[string]any{"name": "service-registry", "config": badConfig}, nil)
		ae, ok := err.(*adminError)
		if !ok || ae.Status != 400 || ae.Body["code"] != 2.0 || ae.Body["name"] != "schema violation" {
			t.Fatalf("bad config: %v", err)
		}
		fields, _ := ae.Body["fields"].(map[string]any)
		if got, _ := json.Marshal(fields["config"]); string(got) != badFields {
			t.Fatalf("config fields = %s\nwant            %s", got, badFields)
		}
	})
}

// dumpedConfigFields returns the config record's fields from the plugin's
// -dump, as Kong reads them.
func dumpedConfigFields(t *testing.T) []map[string]map[string]any {
	t.Helper()
	out, err := exec.Command(pluginBin, "-dump").Output()
	if err != nil {
		t.Fatal(err)
	}
	var dump struct {
		Plugins []struct {
			Schema struct{ Fields []map[string]map[string]any }
		}
	}
	if err := json.Unmarshal(out, &dump); err != nil || len(dump.Plugins) != 1 {
		t.Fatalf("-dump: %v %s", err, out)
	}
	for _, f := range dump.Plugins[0].Schema.Fields {
		if c, ok := f["config"]; ok {
			raw, _ := json.Marshal(c["fields"])
			var fields []map[string]map[string]any
			_ = json.Unmarshal(raw, &fields)
			return fields
		}
	}
	t.Fatalf("-dump has no config record: %s", out)
	return nil
}

// checkDefaults asserts that every field with a default has it in got, in
// records too, and returns how many defaults it checked.
func checkDefaults(t *testing.T, path string, fields []map[string]map[string]any, got map[string]any) int {
	t.Helper()
	n := 0
	for _, f := range fields {
		for name, def := range f {
			if d, ok := def["default"]; ok {
				n++
				if !reflect.DeepEqual(got[name], d) {
					t.Errorf("%s.%s = %v, want the default %v", path, name, got[name], d)
				}
			}
			if def["type"] == "record" {
				sub, _ := got[name].(map[string]any)
				raw, _ := json.Marshal(def["fields"])
				var subFields []map[string]map[string]any
				_ = json.Unmarshal(raw, &subFields)
				n += checkDefaults(t, path+"."+name, subFields, sub)
			}
		}
	}
	return n
}

// decK (1.4, from Debian) against the real Kong in DB mode: it sees the
// registry's entities by tag, and its sync of another select tag leaves
// them alone (tests/adminsvc TestDeckAgainstFake).
func TestDeckSelectTag(t *testing.T) {
	if _, err := exec.LookPath("deck"); err != nil && os.Getenv("CI") == "" {
		t.Skip("deck not installed (apt-get install deck)")
	}
	eachKong(t, modeDB, func(t *testing.T, k *kong) {
		rs := redistest.Start(t, redistest.Options{})
		s := startSvc(t, k, rs.URL(), nil)
		s.do("POST", "/register", `{"host":"api.example.com","path":"/v2","backend":"http://api-v2:9000","options":{"headers":{"X-A":"1"}}}`)
		s.do("POST", "/register", `{"host":"api.example.com","path":"/v1","backend":"http://api-v1:9000"}`)
		waitAgree(t, s, k, 20*time.Second)

		deck := func(args ...string) string {
			t.Helper()
			cmd := exec.Command("deck", append(args, "--kong-addr", k.admin, "--no-color")...)
			cmd.Dir = t.TempDir()
			cmd.Env = append(os.Environ(), "HOME="+cmd.Dir)
			out, err := cmd.CombinedOutput()
			if err != nil {
				t.Fatalf("deck %v: %v\n%s", args, err, out)
			}
			return string(out)
		}
		if out := deck("ping"); !strings.Contains(out, "Successfully connected") {
			t.Fatalf("deck ping: %s", out)
		}
		dump := deck("dump", "--select-tag", translator.TagManaged, "-o", "-")
		for _, want := range []string{"name: sr-api.example.com_v2", "name: sr-api.example.com_v1", "sr-api.example.com_v2.upstream",
			"service-registry", "response-transformer", "target: api-v2:9000"} {
			if !strings.Contains(dump, want) {
				t.Fatalf("deck dump lacks %q:\n%s", want, dump)
			}
		}
		before := len(k.list(t, "services"))
		file := filepath.Join(t.TempDir(), "team-a.yaml")
		if err := os.WriteFile(file, []byte(`_format_version: "1.1"
_info:
  select_tags:
  - team-a
services:
- name: team-a-svc
  url: http://team-a:8080
  routes:
  - name: team-a-route
    paths:
    - /team-a
`), 0o644); err != nil {
			t.Fatal(err)
		}
		if out := deck("sync", "-s", file); !strings.Contains(out, "Created: 2") {
			t.Fatalf("deck sync: %s", out)
		}
		if _, ok := k.find(t, "services", "team-a-svc"); !ok {
			t.Fatal("deck sync did not create its service")
		}
		if err := agree(t, s, k); err != nil {
			t.Fatalf("after deck sync: %v", err)
		}
		if n := len(k.list(t, "services")); n != before+1 {
			t.Fatalf("services before %d after %d", before, n)
		}
		// A second sync never deletes ours.
		if out := deck("sync", "-s", file); strings.Contains(out, "deleting") || strings.Contains(out, "sr-api") {
			t.Fatalf("second deck sync touched registry entities: %s", out)
		}
		if err := agree(t, s, k); err != nil {
			t.Fatalf("after second deck sync: %v", err)
		}
		s.waitReconciles(2)
		if _, ok := k.find(t, "services", "team-a-svc"); !ok {
			t.Fatal("reconcile removed decK's service")
		}
	})
}
