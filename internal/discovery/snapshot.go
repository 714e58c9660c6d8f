package discovery

import (
	"sort"
	"sync/atomic"
	"time"

	"github.com/kong-service-registry/service-registry/internal/registry"
)

// maxSlots bounds a snapshot's schedule (4 bytes a slot). Weights whose
// reduced sum exceeds it are scaled down, which changes ratios by at most
// half a slot per instance.
const maxSlots = 16384

// Target is one pickable instance, with the parts set_target needs ready.
type Target struct {
	ID     string
	Addr   string // host:port as registered
	Host   string
	Port   int
	Weight int
	// expires is the lease end in unix nanoseconds; 0 for no lease.
	expires int64
}

// Snapshot is an immutable view of one service at one version, plus the
// picker's position. Found is false for a service the registry does not
// know (cached too, so unknown services cost no round trip either).
type Snapshot struct {
	Service     string
	Version     int64
	Found       bool
	Maintenance registry.Maintenance
	LoadedAt    time.Time
	// Targets are the instances with weight 1..65535 and a valid address.
	Targets []Target

	// schedule lists target indexes in a smooth weighted order: every
	// target appears weight times per period, spread evenly (stride
	// scheduling, the interleaving nginx's smooth weighted round-robin
	// produces). Pick walks it with one atomic counter: no lock.
	schedule []uint32
	next     atomic.Uint64
	leases   bool
}

// HasLeases reports whether any target can expire: only then does Pick
// need the current time (reading the clock is most of a pick's cost).
func (s *Snapshot) HasLeases() bool { return s.leases }

// NewSnapshot builds the snapshot of svc; found=false builds an empty one.
func NewSnapshot(svc registry.Service, found bool, now time.Time) *Snapshot {
	s := &Snapshot{Service: svc.Name, Version: svc.Version, Found: found, Maintenance: svc.Maintenance, LoadedAt: now}
	for _, in := range svc.Instances {
		// Weight 0 drains an instance; above MaxWeight is data the store
		// would have refused (written around it): never route to it.
		if in.Weight <= 0 || in.Weight > registry.MaxWeight {
			continue
		}
		// An address the store would refuse (written around it) never
		// reaches set_target: its host becomes the upstream Host header.
		host, port, ok := registry.SplitAddress(in.Address)
		if !ok {
			continue
		}
		t := Target{ID: in.ID, Addr: in.Address, Host: host, Port: port, Weight: in.Weight}
		// Pick compares in nanoseconds on the hot path, with the same
		// boundary as registry.Instance.Expired (expired at the end itself).
		if end := in.LeaseEnd(); !end.IsZero() {
			t.expires = end.UnixNano()
			s.leases = true
		}
		s.Targets = append(s.Targets, t)
	}
	s.schedule = buildSchedule(s.Targets)
	return s
}

func gcd(a, b int) int {
	for b != 0 {
		a, b = b, a%b
	}
	return a
}

// buildSchedule places target i's k-th slot at (2k+1)/(2w_i) of the period
// and orders all slots by that position (ties by index): each target gets
// exactly its share and never bunches up.
func buildSchedule(ts []Target) []uint32 {
	if len(ts) == 0 {
		return nil
	}
	w := make([]int64, len(ts))
	g := 0
	for i, t := range ts {
		g = gcd(g, t.Weight)
		w[i] = int64(t.Weight)
	}
	var total int64
	for i := range w {
		w[i] /= int64(g)
		total += w[i]
	}
	if total > maxSlots {
		scaled := int64(0)
		for i := range w {
			w[i] = (w[i]*maxSlots + total/2) / total
			if w[i] < 1 {
				w[i] = 1
			}
			scaled += w[i]
		}
		total = scaled
	}
	type slot struct {
		idx uint32
		num int64 // position = num / den
		den int64
	}
	slots := make([]slot, 0, total)
	for i, wi := range w {
		for k := int64(0); k < wi; k++ {
			slots = append(slots, slot{idx: uint32(i), num: 2*k + 1, den: 2 * wi})
		}
	}
	sort.Slice(slots, func(a, b int) bool {
		l, r := slots[a].num*slots[b].den, slots[b].num*slots[a].den
		if l != r {
			return l < r
		}
		return slots[a].idx < slots[b].idx
	})
	out := make([]uint32, len(slots))
	for i, s := range slots {
		out[i] = s.idx
	}
	return out
}

// usable says whether t may take a request now (0: do not check leases).
func (t *Target) usable(now int64, skip func(addr string) bool) bool {
	if now != 0 && t.expires != 0 && t.expires <= now {
		return false
	}
	return skip == nil || !skip(t.Addr)
}

// Pick returns the next target in weighted order, skipping leases expired
// at now and any target skip rejects (the circuit breaker's open
// instances). A zero now skips the lease check (see HasLeases). Safe for
// concurrent use; it does not allocate.
func (s *Snapshot) Pick(now time.Time, skip func(addr string) bool) (Target, bool) {
	n := uint64(len(s.schedule))
	if n == 0 {
		return Target{}, false
	}
	var nowNs int64
	if !now.IsZero() {
		nowNs = now.UnixNano()
	}
	start := s.next.Add(1) - 1
	// The next few slots keep the weighted order among the remaining
	// targets; after that fall back to a linear scan so that a service
	// with almost everything skipped costs O(instances), not O(slots).
	limit := uint64(2*len(s.Targets) + 8)
	if limit > n {
		limit = n
	}
	for i := uint64(0); i < limit; i++ {
		t := &s.Targets[s.schedule[(start+i)%n]]
		if t.usable(nowNs, skip) {
			return *t, true
		}
	}
	for i := range s.Targets {
		t := &s.Targets[(int(start%uint64(len(s.Targets)))+i)%len(s.Targets)]
		if t.usable(nowNs, skip) {
			return *t, true
		}
	}
	return Target{}, false
}
