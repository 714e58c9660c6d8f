// Package pdkserve is a lean server loop for go-pdk plugins: the same
// protocol (Kong's ProtoBuf plugin-server RPC, go-pdk's kong_plugin_protocol
// types) and the same PDK API (*pdk.PDK handed to Access, Log, ...), with
// less work per request than go-pdk's own server.StartServer:
//
//   - a frame (4-byte length + data) is one write, and the frames of one
//     PDK call (method, arguments) or of an event's end (empty frame, reply)
//     leave in one write(2) instead of two to four: writes are buffered
//     until the loop or the PDK waits for Kong's answer. Kong reads the
//     length and then the data; with both in one segment its second read is
//     served from its buffer, without another trip through nginx's event
//     loop;
//   - reads are buffered: Kong's two sends of a frame usually cost one
//     read(2) here;
//   - one *pdk.PDK per connection instead of one per event (go-pdk's is a
//     dozen small allocations);
//   - a handler that panics costs its request, not the plugin server.
//
// It does not implement go-pdk's -dump (the plugin has its own) nor the
// older MessagePack protocol. Measured in a real Kong 3.4 against go-pdk's
// loop with the same empty plugin (make bench-kong, BENCHMARKS.md): no
// difference beyond the noise of this machine, so the plugin keeps go-pdk's
// server and this loop lives with the benchmark that measured it.
package pdkserve

import (
	"bufio"
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"net"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"time"

	"github.com/Kong/go-pdk"
	pb "github.com/Kong/go-pdk/server/kong_plugin_protocol"
	"google.golang.org/protobuf/proto"
)

// SocketPath is where Kong expects the plugin named after this executable:
// <kong prefix>/<name>.socket, the prefix from -kong-prefix (go-pdk's flag;
// default /usr/local/kong).
func SocketPath(args []string) string {
	prefix := "/usr/local/kong"
	for i, a := range args {
		a = strings.TrimPrefix(a, "-")
		if v, ok := strings.CutPrefix(a, "-kong-prefix="); ok {
			prefix = v
		} else if v, ok := strings.CutPrefix(a, "kong-prefix="); ok {
			prefix = v
		} else if (a == "kong-prefix" || a == "-kong-prefix") && i+1 < len(args) {
			prefix = args[i+1]
		}
	}
	return filepath.Join(prefix, filepath.Base(os.Args[0])+".socket")
}

// Server runs plugin instances made by New for Kong.
type Server struct {
	// New returns a fresh config; Kong's JSON config is decoded into it.
	New func() any
	// OnError gets connection and handler errors (nil: ignored). Kong closes
	// the connection of a request a plugin ended with kong.response.exit
	// (its coroutine is never resumed), so errors come in bursts: throttle.
	OnError func(error)

	mu        sync.RWMutex
	instances map[int32]*instance
}

type instance struct {
	handlers map[string]func(*pdk.PDK)
	started  int64
}

// ListenAndServe removes a stale socket, listens on path and serves until
// the listener fails.
func (s *Server) ListenAndServe(path string) error {
	if err := os.Remove(path); err != nil && !errors.Is(err, os.ErrNotExist) {
		return fmt.Errorf("removing old socket: %w", err)
	}
	l, err := net.Listen("unix", path)
	if err != nil {
		return fmt.Errorf("listening on %s: %w", path, err)
	}
	defer l.Close()
	return s.Serve(l)
}

// Serve accepts Kong's connections on l, one goroutine each.
func (s *Server) Serve(l net.Listener) error {
	for {
		c, err := l.Accept()
		if err != nil {
			return err
		}
		go s.ServeConn(c)
	}
}

// ServeConn runs Kong's calls on one connection until it closes.
func (s *Server) ServeConn(nc net.Conn) {
	c := newBufConn(nc)
	defer c.Close()
	k := pdk.Init(c) // one per connection: it only holds the connection
	var call pb.RpcCall
	for {
		data, err := c.readFrame()
		if err != nil {
			if !errors.Is(err, io.EOF) {
				s.fail(fmt.Errorf("pdkserve: reading: %w", err))
			}
			return
		}
		call.Reset()
		if err := proto.Unmarshal(data, &call); err != nil {
			s.fail(fmt.Errorf("pdkserve: decoding a call: %w", err))
			return
		}
		ret, err := s.handle(&call, c, k)
		if err != nil {
			// as go-pdk: the connection closes, Kong resets the instance
			s.fail(err)
			return
		}
		var out []byte
		if ret != nil {
			if out, err = proto.Marshal(ret); err != nil {
				s.fail(fmt.Errorf("pdkserve: encoding a reply: %w", err))
				return
			}
		}
		c.writeFrame(out) // leaves with the next read (or Close)
	}
}

func (s *Server) fail(err error) {
	if s.OnError != nil {
		s.OnError(err)
	}
}

func (s *Server) handle(call *pb.RpcCall, c *bufConn, k *pdk.PDK) (*pb.RpcReturn, error) {
	switch m := call.Call.(type) {
	case *pb.RpcCall_CmdGetPluginNames, *pb.RpcCall_CmdGetPluginInfo:
		return nil, nil // go-pdk answers these with an empty frame too
	case *pb.RpcCall_CmdStartInstance:
		id, in, err := s.start(m.CmdStartInstance.Config)
		if err != nil {
			return nil, err
		}
		return status(call.Sequence, m.CmdStartInstance.Name, id, in), nil
	case *pb.RpcCall_CmdGetInstanceStatus:
		in, err := s.get(m.CmdGetInstanceStatus.InstanceId)
		if err != nil {
			return nil, err
		}
		return status(call.Sequence, "---", m.CmdGetInstanceStatus.InstanceId, in), nil
	case *pb.RpcCall_CmdCloseInstance:
		id := m.CmdCloseInstance.InstanceId
		in, err := s.get(id)
		if err != nil {
			return nil, err
		}
		s.mu.Lock()
		delete(s.instances, id)
		s.mu.Unlock()
		return status(call.Sequence, "---", id, in), nil
	case *pb.RpcCall_CmdHandleEvent:
		in, err := s.get(m.CmdHandleEvent.InstanceId)
		if err != nil {
			return nil, err
		}
		h := in.handlers[m.CmdHandleEvent.EventName]
		if h == nil {
			return nil, fmt.Errorf("pdkserve: undefined method %s", m.CmdHandleEvent.EventName)
		}
		s.run(h, k, m.CmdHandleEvent.EventName)
		c.writeFrame(nil) // the end of the event's PDK calls
		return &pb.RpcReturn{Sequence: call.Sequence}, nil
	}
	return nil, fmt.Errorf("pdkserve: unexpected call %T", call.Call)
}

// run calls a handler; a panic ends that request's event, not the server.
func (s *Server) run(h func(*pdk.PDK), k *pdk.PDK, event string) {
	defer func() {
		if r := recover(); r != nil {
			s.fail(fmt.Errorf("pdkserve: panic in %s handler: %v", event, r))
		}
	}()
	h(k)
}

func status(seq int64, name string, id int32, in *instance) *pb.RpcReturn {
	return &pb.RpcReturn{Sequence: seq, Return: &pb.RpcReturn_InstanceStatus{
		InstanceStatus: &pb.InstanceStatus{Name: name, InstanceId: id, StartedAt: in.started}}}
}

// start makes an instance of a config; its id is Kong's __seq__ when Kong
// sent one (as go-pdk does), else a free random one.
func (s *Server) start(config []byte) (int32, *instance, error) {
	var meta struct {
		Seq int32 `json:"__seq__"`
	}
	if err := json.Unmarshal(config, &meta); err != nil {
		return 0, nil, fmt.Errorf("pdkserve: decoding config metadata: %w", err)
	}
	cfg := s.New()
	if err := json.Unmarshal(config, cfg); err != nil {
		return 0, nil, fmt.Errorf("pdkserve: decoding config: %w", err)
	}
	in := &instance{handlers: handlers(cfg), started: time.Now().Unix()}
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.instances == nil {
		s.instances = map[int32]*instance{}
	}
	id := meta.Seq
	for id == 0 || (meta.Seq == 0 && s.instances[id] != nil) {
		id = rand.Int32()
	}
	s.instances[id] = in
	return id, in, nil
}

func (s *Server) get(id int32) (*instance, error) {
	s.mu.RLock()
	in := s.instances[id]
	s.mu.RUnlock()
	if in == nil {
		return nil, fmt.Errorf("no plugin instance %d", id)
	}
	return in, nil
}

// handlers maps Kong's event names to the config's methods, as go-pdk does.
func handlers(cfg any) map[string]func(*pdk.PDK) {
	h := map[string]func(*pdk.PDK){}
	if v, ok := cfg.(interface{ Certificate(*pdk.PDK) }); ok {
		h["certificate"] = v.Certificate
	}
	if v, ok := cfg.(interface{ Rewrite(*pdk.PDK) }); ok {
		h["rewrite"] = v.Rewrite
	}
	if v, ok := cfg.(interface{ Access(*pdk.PDK) }); ok {
		h["access"] = v.Access
	}
	if v, ok := cfg.(interface{ Response(*pdk.PDK) }); ok {
		h["response"] = v.Response
	}
	if v, ok := cfg.(interface{ Preread(*pdk.PDK) }); ok {
		h["preread"] = v.Preread
	}
	if v, ok := cfg.(interface{ Log(*pdk.PDK) }); ok {
		h["log"] = v.Log
	}
	return h
}

// bufConn buffers writes until the next read (the moment one side waits
// for the other) and reads through a buffer. The PDK's bridge writes each
// frame as two writes and a PDK call as two frames: here they leave as one.
type bufConn struct {
	net.Conn
	r   *bufio.Reader
	w   []byte
	err error // a failed flush, reported by the next read
	hdr [4]byte
}

func newBufConn(c net.Conn) *bufConn {
	return &bufConn{Conn: c, r: bufio.NewReaderSize(c, 16<<10), w: make([]byte, 0, 4<<10)}
}

func (c *bufConn) Write(p []byte) (int, error) {
	if c.err != nil {
		return 0, c.err
	}
	c.w = append(c.w, p...)
	return len(p), nil
}

func (c *bufConn) flush() error {
	if len(c.w) > 0 && c.err == nil {
		_, c.err = c.Conn.Write(c.w)
	}
	c.w = c.w[:0]
	return c.err
}

func (c *bufConn) Read(p []byte) (int, error) {
	if err := c.flush(); err != nil {
		return 0, err
	}
	return c.r.Read(p)
}

func (c *bufConn) Close() error {
	_ = c.flush()
	return c.Conn.Close()
}

func (c *bufConn) readFrame() ([]byte, error) {
	if _, err := io.ReadFull(c, c.hdr[:]); err != nil {
		return nil, err
	}
	data := make([]byte, binary.LittleEndian.Uint32(c.hdr[:]))
	if _, err := io.ReadFull(c, data); err != nil {
		return nil, err
	}
	return data, nil
}

func (c *bufConn) writeFrame(data []byte) {
	c.w = binary.LittleEndian.AppendUint32(c.w, uint32(len(data)))
	c.w = append(c.w, data...)
}
