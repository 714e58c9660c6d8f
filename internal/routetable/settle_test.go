package routetable

import (
	"context"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

// TestRoundsShareReads: callers arriving while a generation read is in
// flight share the next read (never the one in flight, which may predate
// what they must see): 31 concurrent callers, 2 reads; the second read's
// value goes to the 30.
func TestRoundsShareReads(t *testing.T) {
	var r rounds
	var reads atomic.Int64
	release := make(chan struct{})
	get := func(ctx context.Context) (int64, error) {
		n := reads.Add(1)
		if n == 1 {
			<-release
		}
		return n * 10, nil
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	var wg sync.WaitGroup
	got := make(chan int64, 31)
	call := func() {
		defer wg.Done()
		g, err := r.read(ctx, get)
		if err != nil {
			t.Error(err)
		}
		got <- g
	}
	wg.Add(1)
	go call()
	joined := func() int {
		r.mu.Lock()
		defer r.mu.Unlock()
		if r.next == nil {
			return 0
		}
		return r.next.joined
	}
	deadline := time.Now().Add(10 * time.Second)
	for reads.Load() != 1 {
		if time.Now().After(deadline) {
			t.Fatal("first read never started")
		}
		time.Sleep(time.Millisecond)
	}
	wg.Add(30)
	for range 30 {
		go call()
	}
	for joined() != 30 {
		if time.Now().After(deadline) {
			t.Fatalf("%d callers joined the next round, want 30", joined())
		}
		time.Sleep(time.Millisecond)
	}
	close(release)
	wg.Wait()
	close(got)
	count := map[int64]int{}
	for g := range got {
		count[g]++
	}
	if reads.Load() != 2 || count[10] != 1 || count[20] != 30 {
		t.Fatalf("%d reads, values %v: want 2 reads, 10 once, 20 thirty times", reads.Load(), count)
	}
	// Idle again: the next caller reads at once.
	if g, err := r.read(ctx, get); err != nil || g != 30 {
		t.Fatalf("after the rounds: %d %v", g, err)
	}
}
