package breaker

// Stats are cumulative sync counters and the instances' states now, for
// metrics and tests.
type Stats struct {
	Syncs, SyncFailures int64
	Instances           int
	// Changes counts state changes on this node, by the state entered
	// (indexed by State: Closed, Open, HalfOpen), local or from the cluster.
	Changes [3]int64
	// Open and HalfOpen count the instances in those states now.
	Open, HalfOpen int
}

// Stats returns the counters so far.
func (b *Breakers) Stats() Stats {
	st := Stats{Syncs: b.syncs.Load(), SyncFailures: b.syncFails.Load()}
	b.insts.Range(func(_, v any) bool {
		st.Instances++
		switch State(v.(*instance).state.Load()) {
		case Open:
			st.Open++
		case HalfOpen:
			st.HalfOpen++
		}
		return true
	})
	for i := range st.Changes {
		st.Changes[i] = b.changes[i].Load()
	}
	return st
}

// setState stores in's state, counting a change (Stats.Changes).
func (b *Breakers) setState(in *instance, s State) {
	if State(in.state.Swap(int32(s))) != s {
		b.changes[s].Add(1)
	}
}
