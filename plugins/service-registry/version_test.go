package main

import (
	"encoding/json"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/kong-service-registry/service-registry/internal/testbin"
)

// TestDefaultVersionIsTheVersionFile: make and the Dockerfile read VERSION,
// a plain go build uses defaultVersion; both must name the same release.
func TestDefaultVersionIsTheVersionFile(t *testing.T) {
	root, err := testbin.RepoRoot()
	if err != nil {
		t.Fatal(err)
	}
	b, err := os.ReadFile(filepath.Join(root, "VERSION"))
	if err != nil {
		t.Fatal(err)
	}
	if got := strings.TrimSpace(string(b)); got != defaultVersion {
		t.Fatalf("VERSION file says %q, defaultVersion is %q: keep them equal", got, defaultVersion)
	}
	if !reSemver.MatchString(defaultVersion) {
		t.Fatalf("defaultVersion %q is not x.y.z", defaultVersion)
	}
}

func TestCheckedVersion(t *testing.T) {
	saved := version
	t.Cleanup(func() { version = saved })
	for v, ok := range map[string]bool{
		"0.1.0": true, "1.22.333": true, "10.0.0": true,
		"dev": false, "": false, "1.2": false, "1.2.3.4": false, "v1.2.3": false,
		"1.2.3-rc1": false, "1.2.3+abc": false, "01.2.3": false, "e602c64": false,
		"e602c64-dirty": false, " 1.2.3": false,
	} {
		version = v
		got, err := checkedVersion()
		if ok && (err != nil || got != v) {
			t.Errorf("checkedVersion(%q) = %q, %v; want it accepted", v, got, err)
		}
		if !ok && (err == nil || !strings.Contains(err.Error(), `"`+v+`"`)) {
			t.Errorf("checkedVersion(%q) = %q, %v; want an error naming it", v, got, err)
		}
	}
}

// TestBinaryRefusesANonSemverBuild: a binary stamped "dev" neither dumps nor
// serves; it exits non-zero with the reason instead of letting Kong refuse
// it (or, for a commit hash, keep some of its digits).
func TestBinaryRefusesANonSemverBuild(t *testing.T) {
	root, err := testbin.RepoRoot()
	if err != nil {
		t.Fatal(err)
	}
	bin := filepath.Join(t.TempDir(), "service-registry")
	build := exec.Command("go", "build", "-ldflags", "-X main.version=dev", "-o", bin, "./plugins/service-registry")
	build.Dir = root
	build.Env = append(os.Environ(), "CGO_ENABLED=0")
	if out, err := build.CombinedOutput(); err != nil {
		t.Fatalf("go build: %v\n%s", err, out)
	}
	for _, args := range [][]string{{"-dump"}, {"-kong-prefix", t.TempDir()}} {
		cmd := exec.Command(bin, args...)
		var stderr testbin.Buffer
		cmd.Stderr = &stderr
		out, err := cmd.Output()
		if err == nil || len(out) != 0 {
			t.Errorf("%v: exit %v, stdout %q; want a failure and no output", args, err, out)
		}
		if !strings.Contains(stderr.String(), `version "dev" set at build time is not x.y.z`) {
			t.Errorf("%v: stderr %q does not give the reason", args, stderr.String())
		}
	}
}

// TestPlainBuildDumpsTheDefaultVersion: `go build` with no flags yields what
// Kong loads.
func TestPlainBuildDumpsTheDefaultVersion(t *testing.T) {
	var info struct {
		Plugins []struct{ Version string }
	}
	if err := json.Unmarshal(runDump(t), &info); err != nil {
		t.Fatal(err)
	}
	if len(info.Plugins) != 1 || info.Plugins[0].Version != defaultVersion {
		t.Fatalf("-dump plugins %+v, want one with Version %s", info.Plugins, defaultVersion)
	}
}
