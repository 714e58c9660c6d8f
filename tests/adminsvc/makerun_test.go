package adminsvc_test

import (
	"context"
	"fmt"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/kong-service-registry/service-registry/internal/redistest"
	"github.com/kong-service-registry/service-registry/internal/testbin"
)

// startMakeRun runs adminsvc/run-local.sh (what `make run` runs) with
// SR_REDIS_URL on port redisPort and the adminsvc binary in a temporary
// bin/; it returns the bin dir, the API URL and the script's command.
func startMakeRun(t *testing.T, redisPort int) (string, string, *exec.Cmd) {
	t.Helper()
	root, err := testbin.RepoRoot()
	if err != nil {
		t.Fatal(err)
	}
	bin := t.TempDir()
	if err := os.Symlink(binPath, filepath.Join(bin, "adminsvc")); err != nil {
		t.Fatal(err)
	}
	apiPort := redistest.FreePort(t)
	cmd := exec.Command(filepath.Join(root, "adminsvc", "run-local.sh"))
	cmd.Env = []string{"PATH=" + os.Getenv("PATH"), "HOME=" + os.Getenv("HOME"), "BIN=" + bin,
		fmt.Sprintf("SR_REDIS_URL=redis://127.0.0.1:%d/0", redisPort), fmt.Sprintf("SR_LISTEN=127.0.0.1:%d", apiPort),
		fmt.Sprintf("SR_KONG_ADMIN_URL=http://127.0.0.1:%d", redistest.FreePort(t)), "SR_LOG_LEVEL=error"}
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	logs := &testbin.Buffer{}
	cmd.Stdout, cmd.Stderr = logs, logs
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		_ = syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL)
		_ = cmd.Wait()
		if t.Failed() {
			t.Logf("make run output:\n%s", logs.String())
		}
	})
	url := fmt.Sprintf("http://127.0.0.1:%d", apiPort)
	testbin.WaitFor(t, 30*time.Second, "adminsvc answering", func() bool {
		r, err := http.Get(url + "/health")
		if err != nil {
			return false
		}
		r.Body.Close()
		return r.StatusCode == 200
	})
	return bin, url, cmd
}

func pings(port int) bool {
	c := redis.NewClient(&redis.Options{Addr: fmt.Sprintf("127.0.0.1:%d", port), MaxRetries: -1, DialTimeout: time.Second})
	defer c.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
	defer cancel()
	return c.Ping(ctx).Err() == nil
}

// interrupt is Ctrl-C on `make run`: SIGINT to the whole process group.
func interrupt(t *testing.T, cmd *exec.Cmd) {
	t.Helper()
	_ = syscall.Kill(-cmd.Process.Pid, syscall.SIGINT)
	done := make(chan struct{})
	go func() { _ = cmd.Wait(); close(done) }()
	select {
	case <-done:
	case <-time.After(30 * time.Second):
		t.Fatal("make run did not exit on SIGINT")
	}
}

// TestMakeRunStartsAndStopsItsRedis (issue 13 defect 9): with no Redis at
// SR_REDIS_URL, make run starts one on that port with AOF in bin/ and
// stops it when adminsvc exits (was: port 6379 hard-coded, left running).
func TestMakeRunStartsAndStopsItsRedis(t *testing.T) {
	port := redistest.FreePort(t)
	bin, _, cmd := startMakeRun(t, port)
	if !pings(port) {
		t.Fatal("no Redis on SR_REDIS_URL's port")
	}
	if _, err := os.Stat(filepath.Join(bin, "appendonlydir")); err != nil {
		if _, err2 := os.Stat(filepath.Join(bin, "appendonly.aof")); err2 != nil {
			t.Fatalf("no AOF in bin/: %v", err)
		}
	}
	interrupt(t, cmd)
	testbin.WaitFor(t, 10*time.Second, "the started Redis stopped", func() bool { return !pings(port) })
}

// TestMakeRunKeepsARunningRedis: a Redis that answers at SR_REDIS_URL is
// used and left running.
func TestMakeRunKeepsARunningRedis(t *testing.T) {
	rs := redistest.Start(t, redistest.Options{})
	_, url, cmd := startMakeRun(t, rs.Port)
	r, err := http.Post(url+"/register", "application/json", strings.NewReader(`{"host":"mr.example.com","path":"/","backend":"http://b:1"}`))
	if err != nil || r.StatusCode != 200 {
		t.Fatalf("register: %v %v", r, err)
	}
	r.Body.Close()
	interrupt(t, cmd)
	if !pings(rs.Port) {
		t.Fatal("make run stopped a Redis it did not start")
	}
	if n, _ := rs.Client().Exists(context.Background(), "sr:v1:{_index}:routes").Result(); n != 1 {
		t.Fatal("adminsvc did not use the Redis at SR_REDIS_URL")
	}
}
