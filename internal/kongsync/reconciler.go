package kongsync

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/kong-service-registry/service-registry/internal/registry"
	"github.com/kong-service-registry/service-registry/internal/translator"
)

// Source is the part of the registry store the reconciler reads.
type Source interface {
	ListRoutes(ctx context.Context) ([]registry.Route, error)
	ListServices(ctx context.Context, tags []string) ([]registry.Service, error)
	Generation(ctx context.Context) (int64, error)
	Watch(ctx context.Context) (<-chan registry.Change, error)
}

// ReconcilerOptions configure a Reconciler. Zero values mean the defaults.
type ReconcilerOptions struct {
	Source Source
	Syncer *Syncer
	// Redis holds the lease and the applied generation.
	Redis  redis.UniversalClient
	Prefix string // key prefix; default "sr"
	// Interval between full reconciles without changes; default 30s.
	Interval time.Duration
	// Debounce gathers a burst of changes into one apply: the apply starts
	// Debounce after the last change, but never later than MaxDelay after
	// the first; defaults 200ms and 2s.
	Debounce time.Duration
	MaxDelay time.Duration
	// LeaseTTL is how long a silent leader keeps the lease; default 15s.
	LeaseTTL time.Duration
	// Translate are the translator's options; PluginScope auto is
	// resolved by the Kong mode (scope.go).
	Translate translator.Options
	ReplicaID string // default hostname/pid
	Logger    *slog.Logger
	// Now is the clock for the debounce window and Stats; default time.Now.
	Now func() time.Time
	// OnApply, when set, receives every apply's outcome (metrics).
	OnApply func(Result, error)
}

// Stats are counters for /metrics.
type Stats struct {
	Runs       int64
	Errors     int64
	DriftFixed int64 // entities created, updated or deleted by reconciles
	Leader     bool
	LastError  string
	LastApply  time.Time
}

// Reconciler keeps Kong equal to the registry.
type Reconciler struct {
	o       ReconcilerOptions
	log     *slog.Logger
	lease   *lease
	trigger chan struct{}

	runs, errs, drift atomic.Int64
	leader            atomic.Bool
	mu                sync.Mutex
	lastErr           string
	lastApply         time.Time
}

// NewReconciler checks options; Run starts the work.
func NewReconciler(o ReconcilerOptions) (*Reconciler, error) {
	if o.Source == nil || o.Syncer == nil || o.Redis == nil {
		return nil, errors.New("reconciler: source, syncer and redis are required")
	}
	if err := checkPluginScope(o.Translate.PluginScope); err != nil {
		return nil, fmt.Errorf("reconciler: %w", err)
	}
	if o.Prefix == "" {
		o.Prefix = "sr"
	}
	if o.Interval <= 0 {
		o.Interval = 30 * time.Second
	}
	if o.Debounce <= 0 {
		o.Debounce = 200 * time.Millisecond
	}
	if o.MaxDelay <= 0 {
		o.MaxDelay = 2 * time.Second
	}
	if o.LeaseTTL <= 0 {
		o.LeaseTTL = 15 * time.Second
	}
	if o.Logger == nil {
		o.Logger = slog.Default()
	}
	if o.Now == nil {
		o.Now = time.Now
	}
	if o.ReplicaID == "" {
		host, _ := os.Hostname()
		o.ReplicaID = host + "-" + strconv.Itoa(os.Getpid())
	}
	return &Reconciler{
		o:       o,
		log:     o.Logger,
		lease:   newLease(o.Redis, o.Prefix, o.ReplicaID, o.LeaseTTL),
		trigger: make(chan struct{}, 1),
	}, nil
}

// Trigger asks for a reconcile soon (debounced). It never blocks.
func (r *Reconciler) Trigger() {
	select {
	case r.trigger <- struct{}{}:
	default:
	}
}

// Stats returns a snapshot of the counters.
func (r *Reconciler) Stats() Stats {
	r.mu.Lock()
	defer r.mu.Unlock()
	return Stats{Runs: r.runs.Load(), Errors: r.errs.Load(), DriftFixed: r.drift.Load(),
		Leader: r.leader.Load(), LastError: r.lastErr, LastApply: r.lastApply}
}

// Pending is how many registry changes Kong does not reflect yet: the
// registry generation minus the generation of the last successful apply
// (by any replica). It needs Redis, not Kong.
func (r *Reconciler) Pending(ctx context.Context) (int64, error) {
	gen, err := r.o.Source.Generation(ctx)
	if err != nil {
		return 0, err
	}
	applied, err := r.lease.applied(ctx)
	if err != nil {
		return 0, fmt.Errorf("%w: %w", registry.ErrUnavailable, err)
	}
	return max(gen-applied, 0), nil
}

// Desired reads the registry and translates it. With plugin scope auto it
// needs the Kong mode (asking Kong once when that is auto too).
func (r *Reconciler) Desired(ctx context.Context) (translator.State, error) {
	opts, err := r.translateOptions(ctx)
	if err != nil {
		return translator.State{}, err
	}
	return r.desired(ctx, opts)
}

func (r *Reconciler) desired(ctx context.Context, opts translator.Options) (translator.State, error) {
	routes, err := r.o.Source.ListRoutes(ctx)
	if err != nil {
		return translator.State{}, err
	}
	services, err := r.o.Source.ListServices(ctx, nil)
	if err != nil {
		return translator.State{}, err
	}
	byName := make(map[string]registry.Service, len(services))
	for _, s := range services {
		byName[s.Name] = s
	}
	now := r.o.Now()
	in := make([]translator.RouteInput, 0, len(routes))
	for _, rt := range routes {
		name := registry.ServiceName(rt.Host, rt.Path)
		var live []registry.Instance
		for _, inst := range byName[name].Instances {
			// A lease past its end is gone even if the expirer has not run.
			if inst.Expired(now) {
				continue
			}
			live = append(live, inst)
		}
		in = append(in, translator.RouteInput{Route: rt, Service: name, Instances: live})
	}
	st := translator.Translate(in, opts)
	for _, e := range st.Errors {
		r.log.Warn("route not translatable to kong", "host", e.Host, "path", e.Path, "error", e.Error)
	}
	return st, nil
}

// ReconcileOnce reads the registry and applies it to Kong in full (reading
// Kong, healing drift), without the lease (tests, benchmarks, one-shot use).
// The applied generation is recorded only when this replica holds the
// lease. Not to be called while Run is running.
func (r *Reconciler) ReconcileOnce(ctx context.Context) (Result, error) {
	return r.reconcile(ctx, true)
}

// ApplyChangesOnce is ReconcileOnce for a registry change: it writes what
// changed since the last apply without reading Kong (see Syncer.ApplyChanges).
func (r *Reconciler) ApplyChangesOnce(ctx context.Context) (Result, error) {
	return r.reconcile(ctx, false)
}

func (r *Reconciler) reconcile(ctx context.Context, full bool) (Result, error) {
	gen, err := r.o.Source.Generation(ctx)
	if err != nil {
		return Result{}, err
	}
	opts, err := r.translateOptions(ctx)
	if err != nil {
		// Kong did not tell its mode: counted as the failed apply it is.
		r.account(Result{}, err)
		return Result{}, err
	}
	st, err := r.desired(ctx, opts)
	if err != nil {
		return Result{}, err
	}
	var res Result
	if full {
		res, err = r.o.Syncer.Apply(ctx, st)
	} else {
		res, err = r.o.Syncer.ApplyChanges(ctx, st)
	}
	r.account(res, err)
	if err != nil {
		return res, err
	}
	if r.lease.value != "" {
		if err := r.lease.recordApplied(ctx, gen); err != nil {
			return res, err
		}
	}
	return res, nil
}

// account records an apply's outcome in the counters, the log and OnApply.
func (r *Reconciler) account(res Result, err error) {
	r.runs.Add(1)
	for _, rf := range res.Refused {
		r.log.Warn("kong refused an entity; applied the others", "kind", rf.Kind, "name", rf.Name, "route", rf.Route, "error", rf.Message)
	}
	if res.Mode == ModeDB {
		r.drift.Add(int64(res.Changes()))
	}
	if r.o.OnApply != nil {
		r.o.OnApply(res, err)
	}
	r.mu.Lock()
	if err != nil {
		r.errs.Add(1)
		r.lastErr = err.Error()
	} else {
		r.lastErr = ""
		r.lastApply = r.o.Now()
	}
	r.mu.Unlock()
}

// Run reconciles until ctx ends: on registry changes (debounced), every
// Interval, and with backoff after a failure. Only the lease holder writes
// Kong; the others wait to take over.
func (r *Reconciler) Run(ctx context.Context) error {
	defer func() {
		ctx2, cancel := context.WithTimeout(context.Background(), 2*time.Second)
		defer cancel()
		r.lease.release(ctx2)
		r.leader.Store(false)
	}()
	var wg sync.WaitGroup
	defer wg.Wait()
	wg.Add(1)
	go func() {
		defer wg.Done()
		r.watch(ctx)
	}()

	renew := time.NewTicker(r.o.LeaseTTL / 3)
	defer renew.Stop()
	full := time.NewTimer(0) // first reconcile right away
	defer full.Stop()
	var debounce <-chan time.Time
	// retry: an apply a result asked for (Result.RetryIn), apart from the
	// debounce so that changes meanwhile are still coalesced.
	var retry <-chan time.Time
	var firstChange time.Time
	backoff := time.Duration(0)
	fullRun := false

	for {
		select {
		case <-ctx.Done():
			return nil
		case <-renew.C:
			r.holdLease(ctx)
			continue
		case <-r.trigger:
			debounce = time.After(r.debounceWait(debounce == nil, &firstChange))
			continue
		case <-debounce:
			fullRun = false
		case <-retry:
			fullRun = false
		case <-full.C:
			fullRun = true
		}
		debounce, retry = nil, nil
		if !r.holdLease(ctx) {
			full.Reset(r.o.LeaseTTL / 3)
			continue
		}
		actx, cancel := context.WithTimeout(ctx, max(r.o.Interval, time.Minute))
		res, err := r.reconcile(actx, fullRun)
		cancel()
		if err != nil {
			if ctx.Err() != nil {
				return nil
			}
			if errors.Is(err, errNotLeader) {
				r.leader.Store(false)
			}
			backoff = min(max(backoff*2, 500*time.Millisecond), r.o.Interval)
			r.log.Warn("kong reconcile failed; will retry", "error", err, "retry_in", backoff.String())
			full.Reset(backoff)
			continue
		}
		backoff = 0
		r.logApplied(res, fullRun)
		if res.RetryIn > 0 {
			// Something waits on Kong (the catch-all's route on its plugin).
			retry = time.After(res.RetryIn)
		}
		if fullRun {
			// After a change-triggered apply the interval timer keeps
			// running for the next full reconcile.
			full.Reset(r.o.Interval)
		}
	}
}

// debounceWait is how long to wait after a change before applying: Debounce
// after the last change, but no later than MaxDelay after the first of the
// burst (first says this change starts a burst).
func (r *Reconciler) debounceWait(first bool, firstChange *time.Time) time.Duration {
	now := r.o.Now()
	if first {
		*firstChange = now
	}
	wait := r.o.Debounce
	if left := r.o.MaxDelay - now.Sub(*firstChange); left < wait {
		wait = max(left, 0)
	}
	return wait
}

func (r *Reconciler) logApplied(res Result, full bool) {
	if res.Changes() == 0 && !res.Pushed {
		return
	}
	msg, level := "kong changes applied", slog.LevelDebug
	if full {
		msg, level = "kong reconciled", slog.LevelInfo
	}
	r.log.Log(context.Background(), level, msg, "mode", res.Mode, "created", res.Created, "updated", res.Updated,
		"deleted", res.Deleted, "pushed", res.Pushed, "calls", res.Calls, "took", res.Duration.String())
}

func (r *Reconciler) holdLease(ctx context.Context) bool {
	lctx, cancel := context.WithTimeout(ctx, 3*time.Second)
	defer cancel()
	held, err := r.lease.hold(lctx)
	if err != nil {
		r.log.Warn("kong sync lease unavailable", "error", err)
		held = false
	}
	if held && !r.leader.Load() {
		r.log.Info("kong sync lease acquired", "replica", r.o.ReplicaID)
		// Someone else may have written Kong: check everything once.
		r.o.Syncer.ForgetApplied()
		r.Trigger()
	}
	if !held && r.leader.Load() {
		r.log.Info("kong sync lease lost", "replica", r.o.ReplicaID)
	}
	r.leader.Store(held)
	return held
}

// watch turns the registry change feed into triggers, resubscribing with
// backoff when Redis drops the subscription.
func (r *Reconciler) watch(ctx context.Context) {
	delay := 100 * time.Millisecond
	for ctx.Err() == nil {
		ch, err := r.o.Source.Watch(ctx)
		if err == nil {
			delay = 100 * time.Millisecond
			// Changes may have happened while we were not subscribed.
			r.Trigger()
			for range ch {
				r.Trigger()
			}
		}
		t := time.NewTimer(delay)
		select {
		case <-ctx.Done():
			t.Stop()
			return
		case <-t.C:
		}
		delay = min(delay*2, 5*time.Second)
	}
}
