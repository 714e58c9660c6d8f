package harness

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"os/exec"
	"path/filepath"
	"sync"
	"syscall"
	"time"

	"github.com/kong-service-registry/service-registry/tests/kongschema"
)

// Query runs the plugin's query command (`<bin> -dump`), as Kong does with
// io.popen at start, applies Kong's loading rules to what it printed (the
// plugin is named after the executable, as the plugin server is) and parses
// the dump. Like Kong, it reads stdout whatever the exit status; the status
// and stderr are added to the error for the reader.
func Query(ctx context.Context, bin string) (*kongschema.Plugin, []byte, error) {
	ctx, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	cmd := exec.CommandContext(ctx, bin, "-dump")
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	out, runErr := cmd.Output()
	if err := kongschema.CheckLoad(filepath.Base(bin), out); err != nil {
		if runErr != nil {
			return nil, out, fmt.Errorf("%w (%s -dump: %v: %s)", err, bin, runErr, bytes.TrimSpace(stderr.Bytes()))
		}
		return nil, out, err
	}
	p, err := kongschema.ParseDump(out)
	if err != nil {
		return nil, out, fmt.Errorf("parsing %s -dump: %w", bin, err)
	}
	return p, out, nil
}

// ProcessOptions configures the plugin server supervisor.
type ProcessOptions struct {
	Binary string
	Name   string // plugin name: the socket is <Prefix>/<Name>.socket
	Prefix string // Kong's prefix directory, passed as -kong-prefix
	// RespawnDelay is the minimum time between two spawns. Kong uses 1 s
	// (process.lua: next_spawn = ngx.now() + 1); tests may shorten it.
	RespawnDelay time.Duration
	// Log receives the process output, one line at a time, prefixed like
	// Kong's error.log: "[name:pid] line".
	Log io.Writer
	// Logger gets supervisor events.
	Logger *slog.Logger
}

// Process supervises one plugin server process like Kong's worker 0 does.
type Process struct {
	opts   ProcessOptions
	ctx    context.Context
	cancel context.CancelFunc
	done   chan struct{}

	mu     sync.Mutex
	cmd    *exec.Cmd
	pid    int
	spawns int
	logMu  sync.Mutex
}

// SocketPath is Kong's default pluginserver socket: <prefix>/<name>.socket.
func (p *Process) SocketPath() string {
	return filepath.Join(p.opts.Prefix, p.opts.Name+".socket")
}

// StartProcess spawns the plugin server and keeps it running until Stop.
func StartProcess(opts ProcessOptions) (*Process, error) {
	if opts.RespawnDelay <= 0 {
		opts.RespawnDelay = time.Second
	}
	if opts.Log == nil {
		opts.Log = io.Discard
	}
	if opts.Logger == nil {
		opts.Logger = slog.New(slog.NewTextHandler(io.Discard, nil))
	}
	ctx, cancel := context.WithCancel(context.Background())
	p := &Process{opts: opts, ctx: ctx, cancel: cancel, done: make(chan struct{})}
	first := make(chan error, 1)
	go p.supervise(first)
	if err := <-first; err != nil {
		cancel()
		<-p.done
		return nil, err
	}
	return p, nil
}

// supervise is process.lua's pluginserver_timer: spawn, copy output, wait,
// respawn no sooner than RespawnDelay after the previous spawn; give up on
// exit status 127 (command not found), as Kong does.
func (p *Process) supervise(first chan<- error) {
	defer close(p.done)
	var nextSpawn time.Time
	reported := false
	for p.ctx.Err() == nil {
		if d := time.Until(nextSpawn); d > 0 {
			select {
			case <-time.After(d):
			case <-p.ctx.Done():
				return
			}
		}
		cmd := exec.Command(p.opts.Binary, "-kong-prefix", p.opts.Prefix)
		pr, pw := io.Pipe()
		cmd.Stdout, cmd.Stderr = pw, pw // merge_stderr = true
		err := cmd.Start()
		nextSpawn = time.Now().Add(p.opts.RespawnDelay)
		if !reported {
			first <- err
			reported = true
		}
		if err != nil {
			p.opts.Logger.Error("starting pluginserver", "err", err)
			_ = pw.Close()
			return
		}
		p.mu.Lock()
		p.cmd, p.pid = cmd, cmd.Process.Pid
		p.spawns++
		p.mu.Unlock()
		if p.ctx.Err() != nil {
			// Stop raced with this spawn: do not leave the process behind.
			_ = cmd.Process.Signal(syscall.SIGTERM)
		}
		p.opts.Logger.Info("[pluginserver] started", "pid", cmd.Process.Pid)
		copied := make(chan struct{})
		go p.grabLogs(pr, cmd.Process.Pid, copied)
		waitErr := cmd.Wait()
		_ = pw.Close()
		<-copied
		status := cmd.ProcessState.ExitCode()
		p.opts.Logger.Info("external pluginserver terminated", "name", p.opts.Name, "err", waitErr, "status", status)
		if status == 127 {
			p.opts.Logger.Error("pluginserver start command exited with \"command not found\"")
			return
		}
	}
}

func (p *Process) grabLogs(r io.Reader, pid int, done chan<- struct{}) {
	defer close(done)
	prefix := fmt.Sprintf("[%s:%d] ", p.opts.Name, pid)
	sc := bufio.NewScanner(r)
	sc.Buffer(make([]byte, 64*1024), 1024*1024)
	for sc.Scan() {
		if line := sc.Text(); line != "" {
			p.logMu.Lock()
			_, _ = io.WriteString(p.opts.Log, prefix+line+"\n")
			p.logMu.Unlock()
		}
	}
}

// PID is the current plugin server process id.
func (p *Process) PID() int {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.pid
}

// Spawns counts how many times the process was started.
func (p *Process) Spawns() int {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.spawns
}

// Kill sends SIGKILL to the current process; the supervisor respawns it.
func (p *Process) Kill() error {
	p.mu.Lock()
	cmd := p.cmd
	p.mu.Unlock()
	if cmd == nil || cmd.Process == nil {
		return errors.New("no plugin server process")
	}
	return cmd.Process.Signal(syscall.SIGKILL)
}

// WaitReady polls until the current process accepts connections on its socket.
func (p *Process) WaitReady(ctx context.Context) error {
	for {
		if err := dialCheck(p.SocketPath()); err == nil {
			return nil
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("plugin server socket %s not ready: %w", p.SocketPath(), ctx.Err())
		case <-time.After(5 * time.Millisecond):
		}
	}
}

// Stop ends supervision and terminates the process with SIGTERM (Kong's
// stop_pluginservers), then SIGKILL if it lingers.
func (p *Process) Stop() {
	p.cancel()
	p.mu.Lock()
	cmd := p.cmd
	p.mu.Unlock()
	if cmd != nil && cmd.Process != nil {
		_ = cmd.Process.Signal(syscall.SIGTERM)
	}
	select {
	case <-p.done:
	case <-time.After(5 * time.Second):
		if cmd != nil && cmd.Process != nil {
			_ = cmd.Process.Kill()
		}
		<-p.done
	}
	_ = os.Remove(p.SocketPath())
}
