package routetable

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"sync/atomic"
	"time"

	"github.com/kong-service-registry/service-registry/internal/registry"
)

// Source is the part of the registry the table reads; *registry.Store
// satisfies it.
type Source interface {
	RouteServices(ctx context.Context) ([]string, error)
	ReadServingRoutesOf(ctx context.Context, services []string) ([]registry.ServingRoute, error)
	Generation(ctx context.Context) (int64, error)
	Watch(ctx context.Context) (<-chan registry.Change, error)
}

// Options configures a Table. Zero values mean the documented defaults.
type Options struct {
	// Logger receives one line per state transition; default slog.Default().
	Logger *slog.Logger
	// Timeout bounds each Redis operation; default 2 s.
	Timeout time.Duration
	// PollInterval is how often the registry generation is checked, the
	// backstop for a lost change-feed message; default 1 s.
	PollInterval time.Duration
	// ResubscribeBackoff is the wait before subscribing again, or loading
	// again, after a failure; default 500 ms.
	ResubscribeBackoff time.Duration
}

// Stats are the table's counters, for metrics and tests.
type Stats struct {
	Routes      int   // routes in the table
	FullLoads   int64 // full loads done (first load and after resubscriptions)
	Syncs       int64 // index checks after the generation moved
	Changes     int64 // change-feed messages applied
	Subscribes  int64 // change-feed subscriptions made
	Errors      int64 // failed Redis operations
	Unavailable bool  // the last Redis operation failed
}

// ErrNotLoaded is returned by Wait while the first load has not succeeded.
var ErrNotLoaded = errors.New("routetable: routes not loaded yet")

// Table is the route table of one registry. Create with New, stop with Close.
type Table struct {
	src  Source
	log  *slog.Logger
	opts Options

	snap   atomic.Pointer[snapshot]
	loaded chan struct{} // closed after the first successful load
	start  sync.Once
	ctx    context.Context
	cancel context.CancelFunc
	wg     sync.WaitGroup

	fullLoads, syncs, changes, subs, errs atomic.Int64
	down                                  atomic.Bool

	// Settle's state (settle.go): the registry generation the table is
	// known to reflect (index checked at it), a channel closed whenever
	// that moves, the run goroutine's request for a check, and the
	// generation reads shared by concurrent misses.
	settled   atomic.Int64
	settledCh atomic.Pointer[chan struct{}]
	settleReq chan struct{}
	genRounds rounds

	// Owned by the run goroutine.
	byService  map[string]*Entry
	svcTouched map[string]bool              // services set since the last publish
	buckets    map[bucket]map[string]*Entry // the routes of each host key
	gen        int64                        // registry generation the table reflects
	retry      map[string]bool              // services whose re-read failed
}

// bucket is a snapshot map key: an exact host, or a wildcard's suffix.
type bucket struct {
	key  string
	wild bool
}

// New returns a table over src; it starts loading with the first Wait.
func New(src Source, o Options) *Table {
	if o.Logger == nil {
		o.Logger = slog.Default()
	}
	if o.Timeout <= 0 {
		o.Timeout = 2 * time.Second
	}
	if o.PollInterval <= 0 {
		o.PollInterval = time.Second
	}
	if o.ResubscribeBackoff <= 0 {
		o.ResubscribeBackoff = 500 * time.Millisecond
	}
	t := &Table{src: src, log: o.Logger, opts: o, loaded: make(chan struct{}),
		byService: map[string]*Entry{}, svcTouched: map[string]bool{}, buckets: map[bucket]map[string]*Entry{}, retry: map[string]bool{}}
	t.ctx, t.cancel = context.WithCancel(context.Background())
	t.snap.Store(emptySnapshot)
	ch := make(chan struct{})
	t.settledCh.Store(&ch)
	t.settleReq = make(chan struct{}, 1)
	t.settled.Store(-1)
	return t
}

// Wait starts the table (once) and waits until its first load succeeded or
// ctx ends. After that it returns nil at once, whatever Redis does: the
// table keeps serving its last state.
func (t *Table) Wait(ctx context.Context) error {
	t.start.Do(func() {
		t.wg.Add(1)
		go t.run()
	})
	select {
	case <-t.loaded:
		return nil
	default:
	}
	if t.down.Load() {
		// Like the discovery cache: while Redis is known down nobody
		// waits for it; the run loop keeps trying.
		return fmt.Errorf("%w: registry unavailable", ErrNotLoaded)
	}
	select {
	case <-t.loaded:
		return nil
	case <-ctx.Done():
		return fmt.Errorf("%w: %w", ErrNotLoaded, ctx.Err())
	case <-t.ctx.Done():
		return fmt.Errorf("%w: table closed", ErrNotLoaded)
	}
}

// Ready reports whether the first load is done (Wait would return nil at
// once), without starting the table.
func (t *Table) Ready() bool {
	select {
	case <-t.loaded:
		return true
	default:
		return false
	}
}

// Match returns the route Kong's router would pick for the request host
// (RequestHost of the Host header) and normalized path; nil when none.
// It does not lock or allocate.
func (t *Table) Match(host, path string) *Entry {
	return t.snap.Load().match(host, path)
}

// Service returns the route of a registry service (the name of the Kong
// service adminsvc made for it); nil when none. It does not lock or
// allocate.
func (t *Table) Service(name string) *Entry {
	return t.snap.Load().byService[name]
}

// Len is the number of routes in the table.
func (t *Table) Len() int { return t.snap.Load().n }

// Close stops the table's goroutine and waits for it.
func (t *Table) Close() {
	t.cancel()
	t.wg.Wait()
}

// Stats returns the counters.
func (t *Table) Stats() Stats {
	return Stats{
		Routes: t.Len(), FullLoads: t.fullLoads.Load(), Syncs: t.syncs.Load(), Changes: t.changes.Load(),
		Subscribes: t.subs.Load(), Errors: t.errs.Load(), Unavailable: t.down.Load(),
	}
}

func (t *Table) failed(op string, err error) {
	t.errs.Add(1)
	if t.ctx.Err() != nil {
		return
	}
	if t.down.CompareAndSwap(false, true) {
		t.log.Warn("service-registry: route table cannot read the registry, serving its last state", "op", op, "error", err)
	}
}

func (t *Table) ok() {
	if t.down.CompareAndSwap(true, false) {
		t.log.Info("service-registry: route table reads the registry again")
	}
}

// sleep waits d or until Close; false when closed.
func (t *Table) sleep(d time.Duration) bool {
	timer := time.NewTimer(d)
	defer timer.Stop()
	select {
	case <-t.ctx.Done():
		return false
	case <-timer.C:
		return true
	}
}
