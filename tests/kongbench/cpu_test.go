package kongbench

import (
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
)

// cpuNs is the CPU time (ns) the processes have used so far, every thread
// counted (/proc/<pid>/task/*/schedstat). CPU time per request is what a
// busy shared machine disturbs least: other processes' load moves req/s a
// lot, the work Kong and the plugin do per request hardly.
func cpuNs(pids ...int) int64 {
	var n int64
	for _, pid := range pids {
		tasks, _ := filepath.Glob(fmt.Sprintf("/proc/%d/task/*/schedstat", pid))
		for _, f := range tasks {
			b, err := os.ReadFile(f)
			if err != nil {
				continue
			}
			v, _ := strconv.ParseInt(strings.Fields(string(b))[0], 10, 64)
			n += v
		}
	}
	return n
}

// workerPIDs are the nginx worker processes of this Kong.
func (k *kong) workerPIDs() []int {
	b, err := os.ReadFile(filepath.Join(k.prefix, "pids", "nginx.pid"))
	if err != nil {
		return nil
	}
	master := strings.TrimSpace(string(b))
	var out []int
	ents, _ := os.ReadDir("/proc")
	for _, e := range ents {
		pid, err := strconv.Atoi(e.Name())
		if err != nil {
			continue
		}
		st, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
		if err != nil {
			continue
		}
		// pid (comm) state ppid ...: comm may hold spaces, cut after ')'
		s := string(st)
		f := strings.Fields(s[strings.LastIndexByte(s, ')')+1:])
		if len(f) > 1 && f[1] == master {
			out = append(out, pid)
		}
	}
	return out
}
