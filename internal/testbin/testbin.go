package testbin

import (
	"bytes"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"sync"
	"testing"
)

// RepoRoot returns the repository root: the nearest directory at or above
// the working directory that holds go.mod. `go test` runs each package in
// its own directory, so this holds from any test in the repository.
func RepoRoot() (string, error) {
	start, err := os.Getwd()
	if err != nil {
		return "", fmt.Errorf("finding the repository root: %w", err)
	}
	dir := start
	for {
		if _, err := os.Stat(filepath.Join(dir, "go.mod")); err == nil {
			return dir, nil
		}
		parent := filepath.Dir(dir)
		if parent == dir {
			return "", fmt.Errorf("go.mod not found at or above %s", start)
		}
		dir = parent
	}
}

// Build runs `go build -o dir/name pkg` from the repository root and returns
// the binary's path. pkg is relative to the root ("./adminsvc"). name is the
// file name: Kong runs a go-pdk plugin by its executable's name, so the
// plugin must be built as "service-registry". Builds use CGO_ENABLED=0, as
// make build and the images do: one configuration, so every test package's
// builds share the compiled dependencies in Go's build cache (a cold
// `make test` compiled them once per configuration). env (KEY=value) is
// added to this process's environment for the build. The build output is
// part of the error.
func Build(dir, pkg, name string, env ...string) (string, error) {
	root, err := RepoRoot()
	if err != nil {
		return "", err
	}
	bin := filepath.Join(dir, name)
	cmd := exec.Command("go", "build", "-o", bin, pkg)
	cmd.Dir = root
	cmd.Env = append(append(os.Environ(), "CGO_ENABLED=0"), env...)
	if out, err := cmd.CombinedOutput(); err != nil {
		return "", fmt.Errorf("go build %s: %w\n%s", pkg, err, out)
	}
	return bin, nil
}

// Main is a whole TestMain: it makes a temporary directory, lets build put
// the package's binaries there (with Build), runs the tests, removes the
// directory and exits with the tests' code. A failed build exits 1 before
// any test runs.
func Main(m *testing.M, build func(dir string) error) {
	dir, err := os.MkdirTemp("", "testbin-")
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	if err := build(dir); err != nil {
		fmt.Fprintln(os.Stderr, err)
		_ = os.RemoveAll(dir)
		os.Exit(1)
	}
	code := m.Run()
	_ = os.RemoveAll(dir)
	os.Exit(code)
}

// Buffer collects output that other goroutines (a process's pipes, a
// server's logger) write while the test reads it: safe under -race.
type Buffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *Buffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *Buffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}
