package pdkserve

import (
	"bufio"
	"encoding/binary"
	"io"
	"net"
	"path/filepath"
	"strings"
	"sync/atomic"
	"testing"

	"github.com/Kong/go-pdk"
	pb "github.com/Kong/go-pdk/server/kong_plugin_protocol"
	"google.golang.org/protobuf/proto"
)

type testConfig struct {
	Header string `json:"header"`
	got    atomic.Value
}

// Access reads one request header (one PDK call) and remembers it.
func (c *testConfig) Access(k *pdk.PDK) {
	v, err := k.Request.GetHeader(c.Header)
	if err != nil {
		v = "error: " + err.Error()
	}
	c.got.Store(v)
}

func (c *testConfig) Log(*pdk.PDK) { panic("boom") }

// countConn counts the server's writes.
type countConn struct {
	net.Conn
	writes *atomic.Int64
}

func (c countConn) Write(p []byte) (int, error) { c.writes.Add(1); return c.Conn.Write(p) }

// kong plays Kong's side of the protocol.
type kong struct {
	t *testing.T
	c net.Conn
	r *bufio.Reader
}

func (k *kong) send(data []byte) {
	k.t.Helper()
	var hdr [4]byte
	binary.LittleEndian.PutUint32(hdr[:], uint32(len(data)))
	if _, err := k.c.Write(append(hdr[:], data...)); err != nil {
		k.t.Fatal(err)
	}
}

func (k *kong) recv() []byte {
	k.t.Helper()
	var hdr [4]byte
	if _, err := io.ReadFull(k.r, hdr[:]); err != nil {
		k.t.Fatal(err)
	}
	data := make([]byte, binary.LittleEndian.Uint32(hdr[:]))
	if _, err := io.ReadFull(k.r, data); err != nil {
		k.t.Fatal(err)
	}
	return data
}

func (k *kong) call(c *pb.RpcCall) {
	k.t.Helper()
	b, err := proto.Marshal(c)
	if err != nil {
		k.t.Fatal(err)
	}
	k.send(b)
}

func (k *kong) ret() *pb.RpcReturn {
	k.t.Helper()
	var r pb.RpcReturn
	if err := proto.Unmarshal(k.recv(), &r); err != nil {
		k.t.Fatal(err)
	}
	return &r
}

// TestProtocol: start an instance (id from __seq__), run an access event
// with one PDK call answered by "Kong", a log event whose handler panics
// (the server survives), then close the instance; each PDK call leaves the
// server in one write.
func TestProtocol(t *testing.T) {
	var cfg *testConfig
	s := &Server{New: func() any { cfg = &testConfig{}; return cfg }, OnError: func(error) {}}
	path := filepath.Join(t.TempDir(), "p.socket")
	l, err := net.Listen("unix", path)
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	var writes atomic.Int64
	go func() {
		for {
			c, err := l.Accept()
			if err != nil {
				return
			}
			go s.ServeConn(countConn{c, &writes})
		}
	}()
	c, err := net.Dial("unix", path)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	k := &kong{t, c, bufio.NewReader(c)}

	k.call(&pb.RpcCall{Sequence: 1, Call: &pb.RpcCall_CmdStartInstance{CmdStartInstance: &pb.CmdStartInstance{
		Name: "p", Config: []byte(`{"__seq__": 7, "header": "x-who"}`)}}})
	st := k.ret().GetInstanceStatus()
	if st.GetInstanceId() != 7 || st.GetName() != "p" {
		t.Fatalf("start: %+v", st)
	}

	w0 := writes.Load()
	k.call(&pb.RpcCall{Sequence: 2, Call: &pb.RpcCall_CmdHandleEvent{CmdHandleEvent: &pb.CmdHandleEvent{InstanceId: 7, EventName: "access"}}})
	if m := string(k.recv()); m != "kong.request.get_header" {
		t.Fatalf("method %q", m)
	}
	var arg pb.String
	if err := proto.Unmarshal(k.recv(), &arg); err != nil || arg.V != "x-who" {
		t.Fatalf("args %+v %v", &arg, err)
	}
	if n := writes.Load() - w0; n != 1 {
		t.Errorf("the PDK call took %d writes, want 1", n)
	}
	b, _ := proto.Marshal(&pb.String{V: "alice"})
	k.send(b)
	if end := k.recv(); len(end) != 0 {
		t.Fatalf("end of event: %q", end)
	}
	if r := k.ret(); r.Sequence != 2 {
		t.Fatalf("event reply %+v", r)
	}
	if got := cfg.got.Load(); got != "alice" {
		t.Fatalf("handler saw %v", got)
	}
	if n := writes.Load() - w0; n != 2 {
		t.Errorf("the event took %d writes, want 2 (the call; end and reply together)", n)
	}

	k.call(&pb.RpcCall{Sequence: 3, Call: &pb.RpcCall_CmdHandleEvent{CmdHandleEvent: &pb.CmdHandleEvent{InstanceId: 7, EventName: "log"}}})
	if end := k.recv(); len(end) != 0 {
		t.Fatalf("end of panicking event: %q", end)
	}
	if r := k.ret(); r.Sequence != 3 {
		t.Fatalf("event reply %+v", r)
	}

	k.call(&pb.RpcCall{Sequence: 4, Call: &pb.RpcCall_CmdCloseInstance{CmdCloseInstance: &pb.CmdCloseInstance{InstanceId: 7}}})
	if r := k.ret(); r.GetInstanceStatus().GetInstanceId() != 7 {
		t.Fatalf("close: %+v", r)
	}
	// An unknown instance closes the connection, as go-pdk does (Kong then
	// starts the instance again).
	k.call(&pb.RpcCall{Sequence: 5, Call: &pb.RpcCall_CmdHandleEvent{CmdHandleEvent: &pb.CmdHandleEvent{InstanceId: 7, EventName: "access"}}})
	if _, err := k.r.ReadByte(); err != io.EOF {
		t.Fatalf("after an unknown instance: %v, want EOF", err)
	}
}

func TestSocketPath(t *testing.T) {
	for args, want := range map[string]string{"-kong-prefix /p": "/p", "--kong-prefix=/q": "/q", "": "/usr/local/kong"} {
		if got := filepath.Dir(SocketPath(strings.Fields(args))); got != want {
			t.Errorf("%q: %s, want %s", args, got, want)
		}
	}
}
