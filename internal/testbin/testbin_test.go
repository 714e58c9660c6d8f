package testbin

import (
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"
)

func TestRepoRootHoldsThisModule(t *testing.T) {
	root, err := RepoRoot()
	if err != nil {
		t.Fatal(err)
	}
	mod, err := os.ReadFile(filepath.Join(root, "go.mod"))
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(string(mod), "module github.com/kong-service-registry/service-registry") {
		t.Fatalf("%s/go.mod is not this module's:\n%s", root, mod)
	}
}

func TestBuildNamesTheBinaryAndRunsIt(t *testing.T) {
	dir := t.TempDir()
	// srctl is small and has no cgo; CGO_ENABLED=0 checks env reaches go build.
	bin, err := Build(dir, "./adminsvc/srctl", "named-srctl", "CGO_ENABLED=0")
	if err != nil {
		t.Fatal(err)
	}
	if bin != filepath.Join(dir, "named-srctl") {
		t.Fatalf("binary at %s, want %s", bin, filepath.Join(dir, "named-srctl"))
	}
	if out, err := exec.Command(bin, "--help").CombinedOutput(); len(out) == 0 {
		t.Fatalf("%s --help printed nothing (%v)", bin, err)
	}
}

func TestBuildFailureCarriesTheCompilerOutput(t *testing.T) {
	_, err := Build(t.TempDir(), "./no/such/package", "x")
	if err == nil || !strings.Contains(err.Error(), "no/such/package") {
		t.Fatalf("err = %v, want a go build error naming the package", err)
	}
}

func TestBufferConcurrentWrites(t *testing.T) {
	var b Buffer
	var wg sync.WaitGroup
	for i := 0; i < 8; i++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for j := 0; j < 100; j++ {
				_, _ = b.Write([]byte("x"))
				_ = b.String()
			}
		}()
	}
	wg.Wait()
	if n := len(b.String()); n != 800 {
		t.Fatalf("len = %d, want 800", n)
	}
}

// The shipped programs must not link test plumbing (doc.go).
func TestShippedProgramsDoNotImportTestbin(t *testing.T) {
	root, err := RepoRoot()
	if err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command("go", "list", "-deps", "./adminsvc", "./adminsvc/srctl", "./adminsvc/client", "./plugins/service-registry", "./deploy/echo-backend")
	cmd.Dir = root
	out, err := cmd.Output()
	if err != nil {
		t.Fatalf("go list: %v", err)
	}
	if strings.Contains(string(out), "/internal/testbin\n") {
		t.Fatal("a shipped program imports internal/testbin")
	}
}

func TestPollAndWaitFor(t *testing.T) {
	n := 0
	if !Poll(10*time.Second, func() bool { n++; return n == 3 }) || n != 3 {
		t.Fatalf("Poll stopped at %d", n)
	}
	if Poll(20*time.Millisecond, func() bool { return false }) {
		t.Fatal("Poll of a false condition held")
	}
	var mu sync.Mutex
	done := false
	go func() { time.Sleep(10 * time.Millisecond); mu.Lock(); done = true; mu.Unlock() }()
	if d := WaitFor(t, 10*time.Second, "done", func() bool { mu.Lock(); defer mu.Unlock(); return done }); d < 10*time.Millisecond {
		t.Fatalf("WaitFor returned after %s, before the condition held", d)
	}
}
