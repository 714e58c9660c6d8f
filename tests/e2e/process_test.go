package e2e

import (
	"fmt"
	"net"
	"os"
	"path/filepath"
	"syscall"
	"testing"
)

// Acceptance 1 with the real plugin: the harness runs the service-registry
// binary as its own process and reaches it over <prefix>/service-registry.socket
// (the socket's peer is that PID), and requests are served through it.
func TestRealPluginOverSocket(t *testing.T) {
	e := newEnv(t, envOptions{instances: map[string]int{"a": 1}})
	proc := e.kong.Process()
	pid := proc.PID()
	if exe, err := os.Readlink(fmt.Sprintf("/proc/%d/exe", pid)); err != nil || exe != pluginBin {
		t.Fatalf("/proc/%d/exe = %q (%v), want %s", pid, exe, err, pluginBin)
	}
	if filepath.Base(proc.SocketPath()) != "service-registry.socket" {
		t.Fatalf("socket %s", proc.SocketPath())
	}
	c, err := net.Dial("unix", proc.SocketPath())
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	raw, _ := c.(*net.UnixConn).SyscallConn()
	var cred *syscall.Ucred
	var cerr error
	_ = raw.Control(func(fd uintptr) {
		cred, cerr = syscall.GetsockoptUcred(int(fd), syscall.SOL_SOCKET, syscall.SO_PEERCRED)
	})
	if cerr != nil || int(cred.Pid) != pid {
		t.Fatalf("socket peer = %v (%v), want pid %d", cred, cerr, pid)
	}
	if status, body, h := e.get("/orders"); status != 200 || h.Get("X-Instance") != "a" {
		t.Fatalf("through the plugin: %d %s", status, body)
	}
	if e.kong.Plugin().Name != "service-registry" || e.kong.Plugin().Protocol != "ProtoBuf:1" {
		t.Fatalf("dump: %+v", e.kong.Plugin())
	}
}
