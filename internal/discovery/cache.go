package discovery

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"sync/atomic"
	"time"

	"golang.org/x/sync/singleflight"

	"github.com/kong-service-registry/service-registry/internal/registry"
)

// Source is the part of the registry the cache reads; *registry.Store
// satisfies it.
type Source interface {
	// LoadService reads a service atomically; found=false comes with the
	// version at which it was absent.
	LoadService(ctx context.Context, name string) (svc registry.Service, found bool, err error)
	ServiceVersion(ctx context.Context, name string) (int64, error)
	Watch(ctx context.Context) (<-chan registry.Change, error)
}

// Options configures a Cache. Zero values mean the documented defaults.
type Options struct {
	// Now is the clock; default time.Now.
	Now func() time.Time
	// Logger receives one line per state transition; default slog.Default().
	Logger *slog.Logger
	// Timeout bounds each background Redis operation; default 2s.
	Timeout time.Duration
	// ResubscribeBackoff is the wait before re-subscribing to a lost
	// change feed; default 500ms.
	ResubscribeBackoff time.Duration
	// ProbeInterval is how often a background probe asks Redis while it is
	// down; until one answers, a first load fails at once instead of
	// waiting on Redis. Default 500ms.
	ProbeInterval time.Duration
}

// Stats are the cache's counters, for metrics and tests.
type Stats struct {
	Loads       int64 // snapshots built from Redis
	Checks      int64 // version checks (poll backstop)
	Changes     int64 // change-feed messages received
	Errors      int64 // failed Redis operations
	StaleServes int64 // Get answered while Redis was unreachable
	Subscribes  int64 // change-feed subscriptions made
	Refreshing  int64 // background refreshes running now
	Unavailable bool  // Redis currently unreachable (snapshots are stale)
	Services    int   // services cached
}

// ErrUnavailable is returned by Get for a service never loaded while Redis
// cannot be reached.
var ErrUnavailable = errors.New("discovery: registry unavailable and no snapshot cached")

type entry struct {
	name       string
	snap       atomic.Pointer[Snapshot]
	checkedAt  atomic.Int64 // unix ns of the last successful load or check
	again      atomic.Bool  // a refresh was requested
	force      atomic.Bool  // the next refresh must reload (feed said newer)
	refreshing atomic.Bool
}

// Cache holds snapshots for one Redis client. Create with New, stop with Close.
type Cache struct {
	src    Source
	now    func() time.Time
	log    *slog.Logger
	opts   Options
	ctx    context.Context
	cancel context.CancelFunc
	wg     sync.WaitGroup

	// entries is copy-on-write: lookups are one atomic load and a map read,
	// no lock and no allocation.
	entries atomic.Pointer[map[string]*entry]
	mu      sync.Mutex // serialises writers of entries
	group   singleflight.Group

	down                                      atomic.Bool
	loads, checks, changes, errs, stale, subs atomic.Int64
	inflight                                  atomic.Int64
	feedOnce                                  sync.Once
}

// New returns a cache over src. The change-feed subscription starts with
// the first Get.
func New(src Source, o Options) *Cache {
	if o.Now == nil {
		o.Now = time.Now
	}
	if o.Logger == nil {
		o.Logger = slog.Default()
	}
	if o.Timeout <= 0 {
		o.Timeout = 2 * time.Second
	}
	if o.ResubscribeBackoff <= 0 {
		o.ResubscribeBackoff = 500 * time.Millisecond
	}
	if o.ProbeInterval <= 0 {
		o.ProbeInterval = 500 * time.Millisecond
	}
	c := &Cache{src: src, now: o.Now, log: o.Logger, opts: o}
	c.ctx, c.cancel = context.WithCancel(context.Background())
	m := map[string]*entry{}
	c.entries.Store(&m)
	return c
}

// Now is the cache's clock (for Snapshot.Pick).
func (c *Cache) Now() time.Time { return c.now() }

// Close stops the feed and background refreshes and waits for them.
func (c *Cache) Close() {
	c.cancel()
	c.wg.Wait()
}

// Peek returns the cached snapshot of service without ever waiting: false
// when the service was never loaded. Like Get it schedules a background
// version check when the snapshot is older than maxAge. It does not
// allocate.
func (c *Cache) Peek(service string, maxAge time.Duration) (*Snapshot, bool) {
	e := (*c.entries.Load())[service]
	if e == nil {
		return nil, false
	}
	s := e.snap.Load()
	if s == nil {
		return nil, false
	}
	if c.down.Load() {
		c.stale.Add(1)
	}
	if c.now().UnixNano()-e.checkedAt.Load() >= int64(maxAge) {
		c.kick(e, false)
	}
	return s, true
}

// Get returns the snapshot of service. In steady state it touches no
// network: a snapshot older than maxAge triggers a background version
// check and is returned as is. Only the first Get of a service waits for
// Redis (ctx bounds that wait), and not while Redis is known to be down:
// then it fails at once with ErrUnavailable, and a caller whose wait ran
// out marks Redis down itself (for a request, a Redis slower than its
// bound is down). A background probe finds Redis back.
func (c *Cache) Get(ctx context.Context, service string, maxAge time.Duration) (*Snapshot, error) {
	if s, ok := c.Peek(service, maxAge); ok {
		return s, nil
	}
	return c.load(ctx, service)
}

func (c *Cache) load(ctx context.Context, service string) (*Snapshot, error) {
	c.feedOnce.Do(c.startFeed)
	if c.down.Load() {
		return nil, fmt.Errorf("%w: redis down, waiting for the background probe", ErrUnavailable)
	}
	ch := c.group.DoChan(service, func() (any, error) { return c.firstFetch(service) })
	select {
	case r := <-ch:
		if r.Err != nil {
			return nil, r.Err
		}
		return r.Val.(*Snapshot), nil
	case <-ctx.Done():
		if c.ctx.Err() == nil {
			c.failed(fmt.Errorf("first load of %s: %w", service, ctx.Err()))
		}
		return nil, fmt.Errorf("discovery: loading %s: %w", service, ctx.Err())
	}
}

// firstFetch is the singleflight body of a first load. It is detached from
// the caller's context: other requests share this load.
func (c *Cache) firstFetch(service string) (any, error) {
	lctx, cancel := context.WithTimeout(c.ctx, c.opts.Timeout)
	defer cancel()
	e := c.entry(service)
	if s := e.snap.Load(); s != nil {
		return s, nil
	}
	return c.fetch(lctx, e)
}

func (c *Cache) entry(service string) *entry {
	if e := (*c.entries.Load())[service]; e != nil {
		return e
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	old := *c.entries.Load()
	if e := old[service]; e != nil {
		return e
	}
	m := make(map[string]*entry, len(old)+1)
	for k, v := range old {
		m[k] = v
	}
	e := &entry{name: service}
	m[service] = e
	c.entries.Store(&m)
	return e
}

// fetch loads the service from Redis and installs its snapshot.
func (c *Cache) fetch(ctx context.Context, e *entry) (*Snapshot, error) {
	svc, found, err := c.src.LoadService(ctx, e.name)
	if err != nil {
		c.failed(err)
		return nil, fmt.Errorf("%w: %w", ErrUnavailable, err)
	}
	c.ok()
	s := NewSnapshot(svc, found, c.now())
	c.loads.Add(1)
	// Never replace a newer snapshot with an older one (a slow load racing
	// a fast one), nor one of the same version: it would restart the
	// weighted order for nothing. But a lower version is also what a Redis
	// that came back empty and was rebuilt looks like: tell the two apart by
	// asking Redis where the version is now.
	reset := false
	if old := e.snap.Load(); old != nil && old.Found == s.Found && s.Version < old.Version {
		if v, err := c.src.ServiceVersion(ctx, e.name); err == nil && v < old.Version {
			reset = true
		}
	}
	for {
		old := e.snap.Load()
		if !reset && old != nil && old.Found == s.Found && old.Version >= s.Version {
			s = old
			break
		}
		if e.snap.CompareAndSwap(old, s) {
			break
		}
	}
	e.checkedAt.Store(c.now().UnixNano())
	return s, nil
}

// kick schedules a background refresh of e; at most one runs per service.
func (c *Cache) kick(e *entry, force bool) {
	if force {
		e.force.Store(true)
	}
	e.again.Store(true)
	if !e.refreshing.CompareAndSwap(false, true) {
		return
	}
	c.wg.Add(1)
	c.inflight.Add(1)
	go func() {
		defer c.wg.Done()
		defer c.inflight.Add(-1)
		for {
			for e.again.Swap(false) {
				if c.ctx.Err() != nil {
					e.refreshing.Store(false)
					return
				}
				c.refresh(e)
			}
			e.refreshing.Store(false)
			// A kick between the loop's last check and the Store above
			// found refreshing still true and left: pick it up.
			if !e.again.Load() || !e.refreshing.CompareAndSwap(false, true) {
				return
			}
		}
	}()
}

func (c *Cache) refresh(e *entry) {
	ctx, cancel := context.WithTimeout(c.ctx, c.opts.Timeout)
	defer cancel()
	cur := e.snap.Load()
	if cur == nil {
		// A first load is in flight: join it instead of loading twice, then
		// check its version, since it may have read before the change feed
		// was live.
		v, err, _ := c.group.Do(e.name, func() (any, error) { return c.firstFetch(e.name) })
		if err != nil {
			return
		}
		cur = v.(*Snapshot)
	}
	if !e.force.Swap(false) {
		c.checks.Add(1)
		v, err := c.src.ServiceVersion(ctx, e.name)
		if err != nil {
			c.failed(err)
			return
		}
		c.ok()
		if v == cur.Version {
			e.checkedAt.Store(c.now().UnixNano())
			return
		}
	}
	_, _ = c.fetch(ctx, e)
}

func (c *Cache) failed(err error) {
	c.errs.Add(1)
	if c.ctx.Err() != nil {
		return
	}
	if c.down.CompareAndSwap(false, true) {
		c.log.Warn("service-registry: registry unreachable, serving cached snapshots", "error", err)
		c.wg.Add(1)
		go c.probe()
	}
}

// probe asks Redis every ProbeInterval while it is down, so that no request
// has to: it ends when Redis answers (or anything else reported it back).
func (c *Cache) probe() {
	defer c.wg.Done()
	t := time.NewTicker(c.opts.ProbeInterval)
	defer t.Stop()
	for c.down.Load() {
		select {
		case <-c.ctx.Done():
			return
		case <-t.C:
		}
		ctx, cancel := context.WithTimeout(c.ctx, c.opts.Timeout)
		_, err := c.src.ServiceVersion(ctx, "")
		cancel()
		if err == nil {
			c.ok()
		}
	}
}

func (c *Cache) ok() {
	if c.down.CompareAndSwap(true, false) {
		c.log.Info("service-registry: registry reachable again")
	}
}

func (c *Cache) startFeed() {
	c.wg.Add(1)
	go c.feed()
}

// feed keeps one subscription to the change feed alive until Close.
func (c *Cache) feed() {
	defer c.wg.Done()
	for c.ctx.Err() == nil {
		ch, err := c.src.Watch(c.ctx)
		if err != nil {
			c.failed(err)
			select {
			case <-c.ctx.Done():
				return
			case <-time.After(c.opts.ResubscribeBackoff):
			}
			continue
		}
		c.subs.Add(1)
		c.ok()
		// Changes made before this subscription was live (the first one
		// starts together with the first load; later ones follow a lost
		// connection) were not heard: check everything cached once.
		for _, e := range *c.entries.Load() {
			c.kick(e, false)
		}
		for ch2 := range ch {
			c.changes.Add(1)
			e := (*c.entries.Load())[ch2.Service]
			if e == nil {
				continue
			}
			if s := e.snap.Load(); s == nil || ch2.Version > s.Version {
				c.kick(e, true)
			} else if ch2.Version < s.Version {
				// Older than what we hold: a late message, or a registry
				// rebuilt from empty. The version check in refresh decides.
				c.kick(e, false)
			}
		}
	}
}

// Ages calls fn with each cached service and the age of its snapshot:
// the time since it was last loaded or confirmed current by Redis (for
// metrics; while the change feed works a snapshot is current however old
// this is, since changes are pushed).
func (c *Cache) Ages(fn func(service string, age time.Duration)) {
	now := c.now().UnixNano()
	for name, e := range *c.entries.Load() {
		if e.snap.Load() != nil {
			fn(name, time.Duration(now-e.checkedAt.Load()))
		}
	}
}

// Stats returns the counters.
func (c *Cache) Stats() Stats {
	return Stats{
		Loads: c.loads.Load(), Checks: c.checks.Load(), Changes: c.changes.Load(),
		Errors: c.errs.Load(), StaleServes: c.stale.Load(), Subscribes: c.subs.Load(),
		Refreshing: c.inflight.Load(), Unavailable: c.down.Load(), Services: len(*c.entries.Load()),
	}
}
