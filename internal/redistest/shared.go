package redistest

import (
	"fmt"
	"os"
	"sync"
	"testing"
)

// TB is what servers need from a test: testing.TB has it, and so does the
// process-wide owner of the shared cluster.
type TB interface {
	Helper()
	Fatalf(format string, args ...any)
	Cleanup(func())
	TempDir() string
}

// SharedCluster returns this test process's 3-master Redis Cluster, started
// by its first caller: starting one costs seconds, so a package's tests
// share it. Tests that share it keep to their own keys (a key prefix of
// their own, e.g. from t.Name()) and must not stop, fail over or flush it;
// a test that does needs its own StartCluster. The package's TestMain must
// stop it: call Main, or StopShared after m.Run.
func SharedCluster(t testing.TB) *Cluster {
	t.Helper()
	shared.once.Do(func() {
		defer func() {
			if r := recover(); r != nil {
				f, ok := r.(sharedFailure)
				if !ok {
					panic(r)
				}
				shared.err = string(f)
			}
		}()
		shared.cluster = StartCluster(&shared.owner, ClusterOptions{Masters: 3})
	})
	if shared.err != "" {
		t.Fatalf("shared redis cluster: %s", shared.err)
	}
	return shared.cluster
}

// StopShared stops what SharedCluster started and removes its files.
func StopShared() { shared.owner.stop() }

// Main is a TestMain for packages that use SharedCluster.
func Main(m *testing.M) {
	code := m.Run()
	StopShared()
	os.Exit(code)
}

var shared struct {
	once    sync.Once
	owner   processOwner
	cluster *Cluster
	err     string
}

// sharedFailure carries a Fatalf of the shared owner to SharedCluster, which
// fails the calling test with it.
type sharedFailure string

// processOwner is the TB of what lives as long as the test process.
type processOwner struct {
	mu       sync.Mutex
	cleanups []func()
	dirs     []string
}

func (p *processOwner) Helper() {}

func (p *processOwner) Fatalf(format string, args ...any) {
	panic(sharedFailure(fmt.Sprintf(format, args...)))
}

func (p *processOwner) Cleanup(f func()) {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.cleanups = append(p.cleanups, f)
}

func (p *processOwner) TempDir() string {
	d, err := os.MkdirTemp("", "redistest-shared-")
	if err != nil {
		p.Fatalf("temp dir: %v", err)
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	p.dirs = append(p.dirs, d)
	return d
}

func (p *processOwner) stop() {
	p.mu.Lock()
	cleanups, dirs := p.cleanups, p.dirs
	p.cleanups, p.dirs = nil, nil
	p.mu.Unlock()
	for i := len(cleanups) - 1; i >= 0; i-- {
		cleanups[i]()
	}
	for _, d := range dirs {
		_ = os.RemoveAll(d)
	}
}
