package kongfake

import (
	"errors"
	"os"
	"path/filepath"
	"testing"

	"github.com/kong-service-registry/service-registry/internal/testbin"
	"github.com/kong-service-registry/service-registry/tests/kongschema"
)

// RegistrySchema loads the service-registry plugin's checked-in -dump
// snapshot (kong/schemas/service-registry.json) so the fake validates plugin
// configs like Kong. A missing snapshot fails the test.
func RegistrySchema(t testing.TB) PluginSchema {
	t.Helper()
	root, err := testbin.RepoRoot()
	if err != nil {
		t.Fatalf("kongfake: %v", err)
	}
	b, err := os.ReadFile(filepath.Join(root, "kong", "schemas", "service-registry.json"))
	if errors.Is(err, os.ErrNotExist) {
		// Checked in since the plugin exists: without it plugin configs
		// would go unvalidated, so fail loudly instead.
		t.Fatalf("kongfake: kong/schemas/service-registry.json missing: run `make schema`")
	}
	if err != nil {
		t.Fatalf("kongfake: %v", err)
	}
	p, err := kongschema.ParseDump(b)
	if err != nil {
		t.Fatalf("kongfake: parsing plugin schema: %v", err)
	}
	return dumpSchema{p}
}

// dumpSchema also serves the raw schema for GET /schemas/plugins/<name>.
type dumpSchema struct{ *kongschema.Plugin }

func (d dumpSchema) RawSchema() map[string]any { return d.Schema }
