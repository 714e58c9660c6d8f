package e2e

import (
	"go/parser"
	"go/token"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
)

const modulePath = "github.com/kong-service-registry/service-registry/"

// requireWired fails a scenario whose subsystem the plugin no longer
// imports: rate limiting and breaking are part of the plugin, so losing
// either is a regression, never a reason to skip.
func requireWired(t *testing.T, pkg string) {
	t.Helper()
	if !wired(t, pkg) {
		t.Fatalf("the plugin does not import %s: the scenario cannot run", pkg)
	}
}

// wired reports whether the plugin's non-test sources import pkg.
func wired(t testing.TB, pkg string) bool {
	t.Helper()
	files, err := filepath.Glob("../../plugins/service-registry/*.go")
	if err != nil || len(files) == 0 {
		t.Fatalf("plugin sources not found: %v", err)
	}
	fset := token.NewFileSet()
	for _, f := range files {
		if strings.HasSuffix(f, "_test.go") {
			continue
		}
		src, err := os.ReadFile(f)
		if err != nil {
			t.Fatal(err)
		}
		af, err := parser.ParseFile(fset, f, src, parser.ImportsOnly)
		if err != nil {
			t.Fatal(err)
		}
		for _, im := range af.Imports {
			if p, _ := strconv.Unquote(im.Path.Value); p == modulePath+pkg {
				return true
			}
		}
	}
	return false
}
