package kongbench

import "testing"

// TestCountFrames: the PDK count reads go-pdk frames (4-byte length, then
// the data) out of strace output as one byte stream per socket, whether a
// frame took several writes or several frames one write, and ignores writes
// to other sockets.
func TestCountFrames(t *testing.T) {
	trace := `101 write(7<UNIX-STREAM:[1->2,"/p/sr.socket"]>, "\x03\x00\x00\x00", 4) = 4
101 write(9<TCP:[127.0.0.1:1->127.0.0.1:6379]>, "\x04\x00\x00\x00", 4) = 4
102 write(8<UNIX-STREAM:[3->4,"/p/sr.socket"]>, "\x00\x00\x00\x00", 4) = 4
101 write(7<UNIX-STREAM:[1->2,"/p/sr.socket"]>, "\x6b\x6f", 2) = 2
101 write(7<UNIX-STREAM:[1->2,"/p/sr.socket"]>, "\x6e", 1) = 1
101 write(7<UNIX-STREAM:[1->2,"/p/sr.socket"]>, "\x02\x00\x00\x00\x01\x02\x00\x00\x00\x00", 10) = 10
`
	if n := countFrames(trace); n != 4 {
		t.Fatalf("frames = %d, want 4 (a 3-byte frame in two writes, an empty frame, a 2-byte and an empty frame in one write)", n)
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
