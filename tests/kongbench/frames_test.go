package kongbench

import "testing"

// TestCountFrames: the PDK count reads go-pdk frames (4-byte length, then
// the data, maybe in several writes) out of strace output, per socket, and
// ignores writes to other sockets.
func TestCountFrames(t *testing.T) {
	trace := `101 write(7<UNIX-STREAM:[1->2,"/p/sr.socket"]>, "\x03\x00\x00\x00", 4) = 4
101 write(9<TCP:[127.0.0.1:1->127.0.0.1:6379]>, "\x04\x00\x00\x00", 4) = 4
102 write(8<UNIX-STREAM:[3->4,"/p/sr.socket"]>, "\x00\x00\x00\x00", 4) = 4
101 write(7<UNIX-STREAM:[1->2,"/p/sr.socket"]>, "\x6b\x6f", 2) = 2
101 write(7<UNIX-STREAM:[1->2,"/p/sr.socket"]>, "\x6e", 1) = 1
101 write(7<UNIX-STREAM:[1->2,"/p/sr.socket"]>, "\x0a\x01\x00\x00", 4) = 4
101 write(7<UNIX-STREAM:[1->2,"/p/sr.socket"]>, "\x01\x02\x03\x04\x05\x06\x07\x08"..., 266) = 266
`
	if n := countFrames(trace); n != 3 {
		t.Fatalf("frames = %d, want 3 (a 3-byte frame in two writes, an empty frame, a 266-byte frame)", n)
	}
}

// TestCountFramesUnfinished: with several threads traced, strace splits a
// call into "<unfinished ...>" and "<... write resumed>" lines; the first
// carries the arguments.
func TestCountFramesUnfinished(t *testing.T) {
	trace := `20711 write(53<UNIX-STREAM:[2->1,"/p/s.socket"]>, "\x02\x00\x00\x00", 4 <unfinished ...>
20712 write(30<TCP:[127.0.0.1:1->127.0.0.1:2]>, "\x2a\x37", 165 <unfinished ...>
20711 <... write resumed>)              = 4
20711 write(53<UNIX-STREAM:[2->1,"/p/s.socket"]>, "\x6b\x6f", 2) = 2
`
	if n := countFrames(trace); n != 1 {
		t.Fatalf("frames = %d, want 1", n)
	}
}
