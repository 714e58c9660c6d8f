package harness

import (
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"net"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	pb "github.com/Kong/go-pdk/server/kong_plugin_protocol"
	"google.golang.org/protobuf/proto"
)

// errExit marks a kong.response.exit: Kong never answers it, ends the request
// and the cosocket dies with it.
var errExit = errors.New("kong.response.exit")

// rpcError carries the error string Kong's cosocket API would return, because
// pb_rpc.lua decides what to do by searching that string ("closed",
// "no plugin instance").
type rpcError struct {
	msg string
	err error
}

func (e *rpcError) Error() string { return e.msg }
func (e *rpcError) Unwrap() error { return e.err }

// cosocketErr maps a Go network error to the text ngx.socket would report.
func cosocketErr(err error) error {
	switch {
	case err == nil:
		return nil
	case errors.Is(err, io.EOF), errors.Is(err, io.ErrUnexpectedEOF), errors.Is(err, net.ErrClosed),
		errors.Is(err, syscall.ECONNRESET), errors.Is(err, syscall.EPIPE):
		return &rpcError{msg: "closed", err: err}
	case errors.Is(err, syscall.ECONNREFUSED):
		return &rpcError{msg: "connection refused", err: err}
	case errors.Is(err, syscall.ENOENT):
		return &rpcError{msg: "no such file or directory", err: err}
	}
	var ne net.Error
	if errors.As(err, &ne) && ne.Timeout() {
		return &rpcError{msg: "timeout", err: err}
	}
	return &rpcError{msg: err.Error(), err: err}
}

func dialCheck(socket string) error {
	c, err := net.DialTimeout("unix", socket, time.Second)
	if err != nil {
		return err
	}
	return c.Close()
}

// rpcClient is pb_rpc.lua's Rpc object for one plugin in one worker.
type rpcClient struct {
	socket  string
	timeout time.Duration

	mu    sync.Mutex
	msgID int64

	pool   chan net.Conn // Kong's cosocket keepalive pool
	opened atomic.Int64  // connections dialled, for tests
}

func newRPC(socket string, timeout time.Duration, poolSize int) *rpcClient {
	return &rpcClient{socket: socket, timeout: timeout, pool: make(chan net.Conn, poolSize)}
}

// nextSequence reproduces Rpc:call: `self.msg_id = self.msg_id + 1; local msg_id
// = self.msg_id; ... msg_id = msg_id + 1`: the first call carries 2, then 3, ...
func (r *rpcClient) nextSequence() int64 {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.msgID++
	return r.msgID + 1
}

func (r *rpcClient) get() (net.Conn, error) {
	for {
		select {
		case c := <-r.pool:
			if peerClosed(c) {
				_ = c.Close()
				continue
			}
			return c, nil
		default:
		}
		break
	}
	c, err := net.DialTimeout("unix", r.socket, r.timeout)
	if err != nil {
		return nil, cosocketErr(err)
	}
	r.opened.Add(1)
	return c, nil
}

// peerClosed is what nginx's keepalive pool does with an idle connection
// the peer closed (or wrote to): it drops it at once, on the read event,
// so a later connect finds no dead pooled connection. Seen in a real Kong
// 3.9.3 with its plugin server killed: requests failed with "connection
// refused" (kong.response.error(500)), not "closed" (KONG-NOTES.md).
func peerClosed(c net.Conn) bool {
	sc, ok := c.(syscall.Conn)
	if !ok {
		return false
	}
	raw, err := sc.SyscallConn()
	if err != nil {
		return true
	}
	closed := false
	buf := make([]byte, 1)
	err = raw.Read(func(fd uintptr) bool {
		// EAGAIN: idle and open. Anything else (EOF, unexpected data, an
		// error) closes it, as nginx does.
		_, _, rerr := syscall.Recvfrom(int(fd), buf, syscall.MSG_PEEK|syscall.MSG_DONTWAIT)
		closed = !errors.Is(rerr, syscall.EAGAIN)
		return true
	})
	return closed || err != nil
}

// keepalive is setkeepalive(): back to the pool, or closed when the pool is full.
func (r *rpcClient) keepalive(c net.Conn) {
	_ = c.SetDeadline(time.Time{})
	select {
	case r.pool <- c:
	default:
		_ = c.Close()
	}
}

// drain closes pooled connections (after the plugin server died they are dead).
func (r *rpcClient) drain() {
	for {
		select {
		case c := <-r.pool:
			_ = c.Close()
		default:
			return
		}
	}
}

// bridgeFunc answers one PDK call: method name and argument frame in, reply
// frame out. errExit ends the event without an answer.
type bridgeFunc func(method string, arg []byte) ([]byte, error)

// call is Rpc:call: one RpcCall on a pooled connection; with a bridge, the PDK
// call loop until the plugin's empty frame; then the RpcReturn, whose sequence
// must match.
func (r *rpcClient) call(msg *pb.RpcCall, bridge bridgeFunc) (*pb.RpcReturn, error) {
	seq := r.nextSequence()
	msg.Sequence = seq
	c, err := r.get()
	if err != nil {
		return nil, err
	}
	_ = c.SetDeadline(time.Now().Add(r.timeout))
	data, err := proto.Marshal(msg)
	if err != nil {
		_ = c.Close()
		return nil, fmt.Errorf("encoding RpcCall: %w", err)
	}
	if err := writeFrame(c, data); err != nil {
		_ = c.Close()
		return nil, cosocketErr(err)
	}
	for bridge != nil {
		method, err := readFrame(c)
		if err != nil {
			_ = c.Close()
			return nil, cosocketErr(err)
		}
		if len(method) == 0 {
			break
		}
		args, err := readFrame(c)
		if err != nil {
			_ = c.Close()
			return nil, cosocketErr(err)
		}
		reply, err := bridge(string(method), args)
		if err != nil {
			// exit, or a Lua error in the PDK function: the request (or timer)
			// ends and the cosocket is closed with it, never answered.
			_ = c.Close()
			return nil, err
		}
		if err := writeFrame(c, reply); err != nil {
			_ = c.Close()
			return nil, cosocketErr(err)
		}
		_ = c.SetDeadline(time.Now().Add(r.timeout))
	}
	data, err = readFrame(c)
	if err != nil {
		_ = c.Close()
		return nil, cosocketErr(err)
	}
	r.keepalive(c)
	var ret pb.RpcReturn
	if err := proto.Unmarshal(data, &ret); err != nil {
		return nil, fmt.Errorf("decoding RpcReturn: %w", err)
	}
	// pb_rpc.lua: assert(msg.sequence == msg_id)
	if ret.Sequence != seq {
		return nil, fmt.Errorf("assertion failed: reply sequence %d, want %d", ret.Sequence, seq)
	}
	return &ret, nil
}

// readFrame reads a little-endian uint32 length and that many bytes.
func readFrame(c net.Conn) ([]byte, error) {
	var hdr [4]byte
	if _, err := io.ReadFull(c, hdr[:]); err != nil {
		return nil, err
	}
	n := binary.LittleEndian.Uint32(hdr[:])
	if n > 64<<20 {
		return nil, fmt.Errorf("frame of %d bytes is implausible", n)
	}
	buf := make([]byte, n)
	if _, err := io.ReadFull(c, buf); err != nil {
		return nil, err
	}
	return buf, nil
}

// writeFrame sends length then body, two sends as Kong's write_frame does.
func writeFrame(c net.Conn, data []byte) error {
	var hdr [4]byte
	binary.LittleEndian.PutUint32(hdr[:], uint32(len(data)))
	if _, err := c.Write(hdr[:]); err != nil {
		return err
	}
	if len(data) == 0 {
		return nil
	}
	_, err := c.Write(data)
	return err
}

func isRetryable(err error) bool {
	if err == nil {
		return false
	}
	s := strings.ToLower(err.Error())
	return strings.Contains(s, "no plugin instance") || strings.Contains(s, "closed")
}
