package realkong

import (
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/kong-service-registry/service-registry/internal/testbin"
)

var (
	// pluginBin is ./plugins/service-registry, named as Kong names the plugin.
	pluginBin string
	// adminsvcBin is ./adminsvc.
	adminsvcBin string
	// tmpDir holds the binaries and every Kong prefix of this process.
	tmpDir string
)

// TestMain builds the binaries only when there is a Kong to run them in,
// and stops every Kong (and a Postgres it started) after the tests.
func TestMain(m *testing.M) {
	code, err := run(m)
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		code = 1
	}
	os.Exit(code)
}

func run(m *testing.M) (int, error) {
	var err error
	if tmpDir, err = os.MkdirTemp("", "realkong-"); err != nil {
		return 1, err
	}
	defer os.RemoveAll(tmpDir)
	if err := writeOwner(tmpDir); err != nil {
		return 1, err
	}
	dirs := strings.Fields(os.Getenv(envDirs))
	if len(dirs) > 0 {
		reapStale(filepath.Join(dirs[0], "bin", "kong-stop.sh"))
		// A plain build, as a user makes it: Kong must load it as is.
		if pluginBin, err = testbin.Build(tmpDir, "./plugins/service-registry", "service-registry"); err != nil {
			return 1, err
		}
		if adminsvcBin, err = testbin.Build(tmpDir, "./adminsvc", "adminsvc"); err != nil {
			return 1, err
		}
	}
	defer stopAll()
	startAll(dirs)
	code := m.Run()
	stopping.Store(true) // Kongs no test asked for are not started any more
	starter.Wait()
	printTallies()
	return code, nil
}

func stopAll() {
	stopKongs()
	if pgStartedBy != "" {
		cmd := exec.Command(pgStartedBy, "stop", "postgres")
		cmd.Env = buildEnv(filepath.Dir(filepath.Dir(pgStartedBy)))
		if out, err := cmd.CombinedOutput(); err != nil {
			fmt.Fprintf(os.Stderr, "realkong: %s stop postgres: %v\n%s", pgStartedBy, err, out)
		}
	}
}
