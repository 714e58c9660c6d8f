package realkong

import (
	"errors"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"time"
)

// ownerFile, in this process's temporary directory, names the process
// whose Kongs live under it.
const ownerFile = "owner.pid"

func writeOwner(dir string) error {
	return os.WriteFile(filepath.Join(dir, ownerFile), []byte(strconv.Itoa(os.Getpid())), 0o644)
}

func alive(pid int) bool {
	err := syscall.Kill(pid, 0)
	return err == nil || errors.Is(err, syscall.EPERM)
}

// reapStale stops the Kongs and drops the databases of earlier runs of this
// package that died before their cleanup (a test binary killed by -timeout
// exits without running deferred calls), so they do not pile up on CI
// machines. stop is any build's kong-stop.sh: it works from the prefix's pid
// files.
func reapStale(stop string) {
	owners, _ := filepath.Glob(filepath.Join(os.TempDir(), "realkong-*", ownerFile))
	for _, f := range owners {
		b, err := os.ReadFile(f)
		pid, _ := strconv.Atoi(strings.TrimSpace(string(b)))
		if err != nil || pid <= 0 || alive(pid) {
			continue
		}
		dir := filepath.Dir(f)
		prefixes, _ := filepath.Glob(filepath.Join(dir, "kong-*"))
		for _, p := range prefixes {
			if fi, err := os.Stat(p); err != nil || !fi.IsDir() {
				continue
			}
			cmd := exec.Command(stop)
			cmd.Env = append(buildEnv(filepath.Dir(filepath.Dir(stop))), "KONG_PREFIX_DIR="+p)
			if out, err := cmd.CombinedOutput(); err != nil {
				fmt.Fprintf(os.Stderr, "realkong: stopping a stale kong in %s: %v\n%s", p, err, out)
			}
		}
		_ = os.RemoveAll(dir)
	}
	if c, err := net.DialTimeout("tcp", "127.0.0.1:5432", time.Second); err == nil {
		_ = c.Close()
	} else {
		return
	}
	out, err := exec.Command("psql", "-X", "-q", "-At", "-h", "127.0.0.1", "-p", "5432", "-U", "postgres", "-d", "postgres",
		"-c", `SELECT datname FROM pg_database WHERE datname LIKE 'realkong\_%'`).Output()
	if err != nil {
		return
	}
	for _, name := range strings.Fields(string(out)) {
		// realkong_<pid>_<version>
		parts := strings.Split(name, "_")
		if len(parts) < 3 {
			continue
		}
		if pid, err := strconv.Atoi(parts[1]); err == nil && !alive(pid) {
			if out, err := psql("DROP DATABASE IF EXISTS " + name + " WITH (FORCE)"); err != nil {
				fmt.Fprintf(os.Stderr, "realkong: dropping stale %s: %v\n%s", name, err, out)
			}
		}
	}
}
