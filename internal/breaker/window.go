package breaker

import "sync/atomic"

const buckets = 10

// window counts calls and failures over the last Window in 10 buckets,
// lock-free. A bucket is reused by CAS on its epoch; an add racing that
// reset may be lost, which a breaker's statistics can afford.
type window struct {
	width int64 // bucket width, ns
	b     [buckets]bucket
}

type bucket struct {
	epoch atomic.Int64
	calls atomic.Int64
	fails atomic.Int64
}

func (w *window) add(nowNs int64, failed bool) {
	e := nowNs / w.width
	b := &w.b[e%buckets]
	if old := b.epoch.Load(); old != e && b.epoch.CompareAndSwap(old, e) {
		b.calls.Store(0)
		b.fails.Store(0)
	}
	b.calls.Add(1)
	if failed {
		b.fails.Add(1)
	}
}

func (w *window) sum(nowNs int64) (calls, fails int64) {
	e := nowNs / w.width
	for i := range w.b {
		b := &w.b[i]
		if be := b.epoch.Load(); be > e-buckets && be <= e {
			calls += b.calls.Load()
			fails += b.fails.Load()
		}
	}
	return calls, fails
}

func (w *window) reset() {
	for i := range w.b {
		w.b[i].epoch.Store(0)
		w.b[i].calls.Store(0)
		w.b[i].fails.Store(0)
	}
}
