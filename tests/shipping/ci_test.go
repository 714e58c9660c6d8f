package shipping

import (
	"context"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// TestCIFailsWithoutTheRealKongBundle: with CI set, .ci/run must not skip
// the real-Kong suites when ../shared/realkong is missing; it fails at once,
// before installing or building anything, and says why.
func TestCIFailsWithoutTheRealKongBundle(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	cmd := exec.CommandContext(ctx, "bash", rootPath(".ci", "run"))
	cmd.Env = append(os.Environ(), "CI=true", "REALKONG_SRC="+filepath.Join(t.TempDir(), "no-realkong"))
	out, err := cmd.CombinedOutput()
	if err == nil {
		t.Fatalf(".ci/run passed without the real-Kong bundle:\n%s", out)
	}
	for _, want := range []string{"build.sh not found: CI must build the real Kongs", "ci: FAIL at step 'realkong bundle'"} {
		if !strings.Contains(string(out), want) {
			t.Errorf(".ci/run output lacks %q:\n%s", want, out)
		}
	}
	if strings.Contains(string(out), "ci: ==== install") {
		t.Errorf(".ci/run installed packages before failing:\n%s", out)
	}
}

// TestCIRunsBothRealKongs: .ci/run builds 3.4 and 3.9 from the bundle and
// hands both to the pongo specs and to `make test` (tests/realkong reads
// SR_REALKONG_DIRS), then fuzzes.
func TestCIRunsBothRealKongs(t *testing.T) {
	ci := string(readFile(t, ".ci", "run"))
	for _, want := range []string{
		`KONG_VERSION=3.4 "$REALKONG_SRC/build.sh"`, `KONG_VERSION=3.9 "$REALKONG_SRC/build.sh"`,
		`export SR_REALKONG_DIRS="$REALKONG34 $REALKONG39"`, "make pongo-local", `step "make test" make test`,
		`step "make fuzz" make fuzz`,
	} {
		if !strings.Contains(ci, want) {
			t.Errorf(".ci/run lacks %q", want)
		}
	}
	mk := string(readFile(t, "Makefile"))
	if !strings.Contains(mk, "pongo-local: build") || !strings.Contains(mk, "bin/busted.sh tests/pongo") {
		t.Error("Makefile: no pongo-local target running busted.sh on tests/pongo")
	}
}
