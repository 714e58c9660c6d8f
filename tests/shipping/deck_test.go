package shipping

import (
	"bytes"
	"encoding/json"
	"io"
	"net/http"
	"os"
	"os/exec"
	"strings"
	"testing"
	"time"

	"github.com/kong-service-registry/service-registry/tests/kongfake"
	"github.com/kong-service-registry/service-registry/tests/kongschema"
)

// needDeck returns decK's path; CI installs it (.ci/run), so there a missing
// decK is a failure, elsewhere a skip.
func needDeck(t *testing.T) string {
	t.Helper()
	p, err := exec.LookPath("deck")
	if err != nil {
		if os.Getenv("CI") != "" {
			t.Fatal("deck is not installed (apt-get install deck)")
		}
		t.Skip("deck is not installed (apt-get install deck)")
	}
	return p
}

// TestDeckValidatesKongYML runs the real decK on the root kong.yml, the way
// a user checks a declarative file before syncing it.
func TestDeckValidatesKongYML(t *testing.T) {
	deck := needDeck(t)
	cmd := exec.Command(deck, "validate", "-s", "kong.yml")
	cmd.Dir = root
	out, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("deck validate -s kong.yml: %v\n%s", err, out)
	}
}

// TestDeckRejectsABrokenCopy proves the check above can fail: the same file
// with one unknown field must be refused.
func TestDeckRejectsABrokenCopy(t *testing.T) {
	deck := needDeck(t)
	broken := strings.Replace(string(readFile(t, "kong.yml")), "  retries: 2\n", "  retries: 2\n  bogus_field: 1\n", 1)
	if !strings.Contains(broken, "bogus_field") {
		t.Fatal("kong.yml no longer has the service line this test edits")
	}
	p := t.TempDir() + "/kong.yml"
	if err := os.WriteFile(p, []byte(broken), 0o600); err != nil {
		t.Fatal(err)
	}
	out, err := exec.Command(deck, "validate", "-s", p).CombinedOutput()
	if err == nil {
		t.Fatalf("deck validate accepted an unknown field:\n%s", out)
	}
	if !strings.Contains(string(out), "bogus_field") {
		t.Fatalf("deck's complaint does not name the field:\n%s", out)
	}
}

// pluginDump is the schema Kong would load: the plugin binary's -dump when
// the plugin exists, else the checked-in snapshot.
// SHIPPING_DUMP names another dump file (for trying a schema by hand).
func pluginDump(t *testing.T) []byte {
	t.Helper()
	if f := os.Getenv("SHIPPING_DUMP"); f != "" {
		b, err := os.ReadFile(f)
		if err != nil {
			t.Fatal(err)
		}
		return b
	}
	out, err := exec.Command(pluginBinary(t), "-dump").Output()
	if err != nil {
		t.Fatalf("service-registry -dump: %v", err)
	}
	return out
}

func kongYMLPlugins(t *testing.T) []map[string]any {
	t.Helper()
	docs := yamlDocs(t, "kong.yml")
	if len(docs) != 1 {
		t.Fatalf("kong.yml: want one YAML document, got %d", len(docs))
	}
	var out []map[string]any
	for _, p := range l(docs[0]["plugins"]) {
		if s(dig(p, "name")) == "service-registry" {
			out = append(out, m(p))
		}
	}
	return out
}

// TestKongYMLPluginConfigValidatesAgainstDump checks kong.yml's plugin
// config with Kong's rules against the schema the plugin prints.
func TestKongYMLPluginConfigValidatesAgainstDump(t *testing.T) {
	plugin, err := kongschema.ParseDump(pluginDump(t))
	if err != nil {
		t.Fatalf("parsing the -dump schema: %v", err)
	}
	plugins := kongYMLPlugins(t)
	if len(plugins) != 1 {
		t.Fatalf("kong.yml: want the service-registry plugin once (global), got %d", len(plugins))
	}
	p := plugins[0]
	for _, scope := range []string{"service", "route", "consumer"} {
		if p[scope] != nil {
			t.Errorf("kong.yml: the service-registry plugin must be global, it has %s", scope)
		}
	}
	if got := s(dig(p, "config", "registry")); got != "kong" {
		t.Errorf("kong.yml: config.registry = %q, want kong (seed 001's call)", got)
	}
	cfg := jsonShaped(t, m(p["config"]))
	filled, errs := plugin.Validate(cfg)
	if errs != nil {
		t.Fatalf("kong.yml's plugin config refused by the plugin schema: %v", errs)
	}
	if filled["registry"] != "kong" {
		t.Errorf("after defaults, registry = %v", filled["registry"])
	}
}

// TestKongYMLAcceptedByDBlessKong posts kong.yml to the Admin API fake in
// DB-less mode (POST /config), the plugin schema from -dump enabled, as
// Kong does at start with KONG_DECLARATIVE_CONFIG.
func TestKongYMLAcceptedByDBlessKong(t *testing.T) {
	plugin, err := kongschema.ParseDump(pluginDump(t))
	if err != nil {
		t.Fatalf("parsing the -dump schema: %v", err)
	}
	fake := kongfake.Start(t, kongfake.Options{DBLess: true, Plugins: map[string]kongfake.PluginSchema{"service-registry": plugin}})
	hc := &http.Client{Timeout: 10 * time.Second}
	resp, err := hc.Post(fake.URL()+"/config", "text/yaml", bytes.NewReader(readFile(t, "kong.yml")))
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != http.StatusCreated {
		t.Fatalf("POST /config with kong.yml: %d %s", resp.StatusCode, body)
	}
	if len(fake.List("plugins")) != 1 || len(fake.List("services")) != 1 || len(fake.List("routes")) != 1 {
		t.Fatalf("after POST /config: %d plugins, %d services, %d routes; want 1 each",
			len(fake.List("plugins")), len(fake.List("services")), len(fake.List("routes")))
	}
	for _, kind := range []string{"plugins", "services", "routes"} {
		for _, e := range fake.List(kind) {
			if !containsTag(e["tags"], "managed-by:deck") {
				t.Errorf("%s %v lacks the select tag managed-by:deck: tags %v", kind, e["name"], e["tags"])
			}
		}
	}
}

func containsTag(v any, tag string) bool {
	for _, x := range l(v) {
		if x == tag {
			return true
		}
	}
	return false
}

// jsonShaped turns YAML-decoded values into what Kong gets from JSON
// (numbers as float64).
func jsonShaped(t *testing.T, v map[string]any) map[string]any {
	t.Helper()
	b, err := json.Marshal(v)
	if err != nil {
		t.Fatal(err)
	}
	var out map[string]any
	if err := json.Unmarshal(b, &out); err != nil {
		t.Fatal(err)
	}
	return out
}

// kong39TopLevel are the top-level keys Kong 3.9's declarative schema
// accepts besides entity collections (kong/db/schema/others/
// declarative_config.lua, build_fields): anything else, such as decK's
// _info, makes Kong refuse the file in DB-less mode.
var kong39TopLevel = map[string]bool{"_format_version": true, "_transform": true, "_comment": true, "_ignore": true}

var kong39Entities = map[string]bool{
	"services": true, "routes": true, "upstreams": true, "targets": true, "plugins": true,
	"consumers": true, "certificates": true, "ca_certificates": true, "snis": true,
	"vaults": true, "keys": true, "key_sets": true, "parameters": true,
}

// TestKongYMLIsAlsoAKongDeclarativeFile: the root file is fed to Kong
// itself (KONG_DECLARATIVE_CONFIG in compose and Kubernetes), so it may
// only use keys Kong accepts, with the _format_version values Kong knows.
func TestKongYMLIsAlsoAKongDeclarativeFile(t *testing.T) {
	doc := yamlDocs(t, "kong.yml")[0]
	for k := range doc {
		if strings.HasPrefix(k, "_") && !kong39TopLevel[k] {
			t.Errorf("kong.yml: top-level %q is decK-only; Kong 3.9 DB-less refuses it", k)
		}
		if !strings.HasPrefix(k, "_") && !kong39Entities[k] {
			t.Errorf("kong.yml: top-level %q is not a Kong entity collection", k)
		}
	}
	switch s(doc["_format_version"]) {
	case "1.1", "2.1", "3.0":
	default:
		t.Errorf("kong.yml: _format_version %q is not one Kong 3.9 accepts", s(doc["_format_version"]))
	}
}

// TestDeckSyncKongYMLToDBModeKong syncs the file with the real decK into
// the DB-mode Admin API fake, scoped by the select tag, and checks that the
// tag is not doubled, that a second diff creates and deletes nothing, and
// that adminsvc's entities are left alone.
func TestDeckSyncKongYMLToDBModeKong(t *testing.T) {
	deck := needDeck(t)
	plugin, err := kongschema.ParseDump(pluginDump(t))
	if err != nil {
		t.Fatalf("parsing the -dump schema: %v", err)
	}
	fake := kongfake.Start(t, kongfake.Options{Plugins: map[string]kongfake.PluginSchema{"service-registry": plugin}})
	// An entity adminsvc owns: deck must not delete it.
	hc := &http.Client{Timeout: 10 * time.Second}
	resp, err := hc.Post(fake.URL()+"/services", "application/json",
		strings.NewReader(`{"name":"sr-owned","url":"http://owned:80","tags":["managed-by:service-registry"]}`))
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusCreated {
		t.Fatalf("creating the adminsvc-owned service: %d", resp.StatusCode)
	}
	run := func(args ...string) string {
		t.Helper()
		cmd := exec.Command(deck, append(args, "--kong-addr", fake.URL())...)
		cmd.Dir = root
		out, err := cmd.CombinedOutput()
		if err != nil {
			t.Fatalf("deck %v: %v\n%s", args, err, out)
		}
		return string(out)
	}
	run("sync", "-s", "kong.yml", "--select-tag", "managed-by:deck")
	if _, ok := fake.Find("services", "example"); !ok {
		t.Fatal("after deck sync: no service example")
	}
	if _, ok := fake.Find("services", "sr-owned"); !ok {
		t.Fatal("deck sync deleted adminsvc's service")
	}
	for _, kind := range []string{"plugins", "services", "routes"} {
		for _, e := range fake.List(kind) {
			if e["name"] == "sr-owned" {
				continue
			}
			if tags := l(e["tags"]); len(tags) != 1 || tags[0] != "managed-by:deck" {
				t.Errorf("%s %v: tags %v, want exactly [managed-by:deck]", kind, e["name"], e["tags"])
			}
		}
	}
	// decK 1.4 predates Kong 3 and does not know its newer defaults
	// (route request_buffering, plugin defaults from the schema), so its
	// diff lists those as updates; what matters is that nothing would be
	// created or deleted a second time.
	out := run("diff", "-s", "kong.yml", "--select-tag", "managed-by:deck")
	if !strings.Contains(out, "Created: 0") || !strings.Contains(out, "Deleted: 0") {
		t.Fatalf("deck diff after sync wants to create or delete:\n%s", out)
	}
}
