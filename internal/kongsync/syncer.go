package kongsync

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"strings"
	"sync"
	"time"

	"github.com/kong-service-registry/service-registry/internal/translator"
)

// Kong modes.
const (
	ModeAuto   = "auto"
	ModeDB     = "db"
	ModeDBLess = "dbless"
)

// Options configure a Syncer. Zero values mean the documented defaults.
type Options struct {
	AdminURL string      // default http://127.0.0.1:8001
	Mode     string      // auto (ask Kong's /), db or dbless; default auto
	Headers  http.Header // sent with every call (e.g. Kong-Admin-Token)
	// Timeout bounds each Admin API call; default 10s.
	Timeout time.Duration
	// Attempts per call when Kong answers 5xx or the connection fails;
	// default 3.
	Attempts int
	// Concurrency bounds parallel DB-mode writes; default 8.
	Concurrency int
	// BaseConfig is the operator's kong.yml (YAML or JSON): its entities are
	// kept in every DB-less push. Without it, every push keeps the entities
	// Kong serves (GET /config) that are not tagged as ours.
	BaseConfig []byte
	// DeepEvery makes every Nth DB-mode apply list each upstream's targets
	// (catching target edits made in Kong); default 10. Other applies list
	// targets only for upstreams whose desired targets changed or that lost
	// a target.
	DeepEvery int
	Logger    *slog.Logger
	// ObserveLatency, when set, receives the duration of every Admin API call.
	ObserveLatency func(time.Duration)
	// Now is the clock for Status and for the catch-all's settle time
	// (settle.go); default time.Now.
	Now func() time.Time
}

// Result describes one apply.
type Result struct {
	Mode      string
	Created   int
	Updated   int
	Deleted   int
	Unchanged int
	Pushed    bool // DB-less: a /config push happened
	// Refused lists the entities Kong refused: in DB mode the writes Kong
	// answered 400 (the others were applied); in DB-less mode the routes
	// whose entities Kong refused (the config was pushed without them).
	Refused  []Refusal
	Calls    int64 // Admin API calls made
	Duration time.Duration
	// RetryIn, when set, asks for another apply after that long: DB mode
	// holds the fast path's catch-all route back until its plugin has
	// reached every Kong worker (settle.go).
	RetryIn time.Duration
}

// Changes is the number of entities written or removed.
func (r Result) Changes() int { return r.Created + r.Updated + r.Deleted }

// Syncer applies desired states to one Kong.
type Syncer struct {
	o      Options
	c      *client
	log    *slog.Logger
	mu     sync.Mutex // one apply at a time
	mode   string
	db     *dbSync
	dbless *dblessSync
	status statusTracker
	// infoRead: GET / has been read (the mode when auto, the timings that
	// make the catch-all's settle time); infoWarned: its failure logged.
	infoRead, infoWarned bool
}

// NewSyncer validates options; it does not contact Kong.
func NewSyncer(o Options) (*Syncer, error) {
	if o.AdminURL == "" {
		o.AdminURL = "http://127.0.0.1:8001"
	}
	if o.Mode == "" {
		o.Mode = ModeAuto
	}
	switch o.Mode {
	case ModeAuto, ModeDB, ModeDBLess:
	default:
		return nil, fmt.Errorf("kong mode %q: expected auto, db or dbless", o.Mode)
	}
	if o.Timeout <= 0 {
		o.Timeout = 10 * time.Second
	}
	if o.Attempts <= 0 {
		o.Attempts = 3
	}
	if o.Concurrency <= 0 {
		o.Concurrency = 8
	}
	if o.DeepEvery <= 0 {
		o.DeepEvery = 10
	}
	if o.Logger == nil {
		o.Logger = slog.Default()
	}
	if o.Now == nil {
		o.Now = time.Now
	}
	c, err := newClient(strings.TrimRight(o.AdminURL, "/"), o.Headers, o.Timeout, o.Attempts)
	if err != nil {
		return nil, err
	}
	c.latency = o.ObserveLatency
	base, err := parseBase(o.BaseConfig)
	if err != nil {
		return nil, err
	}
	s := &Syncer{o: o, c: c, log: o.Logger}
	s.db = &dbSync{c: c, concurrency: o.Concurrency, deepEvery: o.DeepEvery, targetSets: map[string]string{},
		settle: kongDefaultSettle, now: o.Now}
	s.dbless = &dblessSync{c: c, log: o.Logger, base: base, fromKong: len(bytes.TrimSpace(o.BaseConfig)) == 0}
	if o.Mode != ModeAuto {
		s.mode = o.Mode
	}
	return s, nil
}

// Calls is the number of Admin API calls made so far.
func (s *Syncer) Calls() int64 { return s.c.calls.Load() }

// detectMode resolves the Kong mode, asking GET / when configured as auto.
// GET / is read once in either case: its configuration also says how long
// Kong's workers take to see a change (settle.go). With the mode
// configured, a failure is no error: Kong's default timings are assumed
// (logged once), and GET / is asked again next time unless Kong refused
// it (4xx, e.g. an RBAC token without access to /). Callers hold s.mu.
func (s *Syncer) detectMode(ctx context.Context) (string, error) {
	if s.infoRead {
		return s.mode, nil
	}
	var info struct {
		Version       string `json:"version"`
		Configuration struct {
			Database string `json:"database"`
			kongTimings
		} `json:"configuration"`
	}
	if err := s.c.do(ctx, http.MethodGet, "/", nil, nil, &info); err != nil {
		if s.mode == "" {
			return "", fmt.Errorf("detecting kong mode: %w", err)
		}
		if !s.infoWarned {
			s.infoWarned = true
			s.log.Warn("kong's GET / failed: assuming kong's default update frequencies for the fast path's catch-all",
				"settle", s.db.settle.String(), "error", err)
		}
		if code := StatusCode(err); code >= 400 && code < 500 {
			s.infoRead = true
		}
		return s.mode, nil
	}
	s.infoRead = true
	s.db.settle = info.Configuration.settle()
	if s.mode != "" {
		return s.mode, nil
	}
	mode := ModeDB
	if info.Configuration.Database == "off" {
		mode = ModeDBLess
	}
	s.log.Info("kong mode detected", "mode", mode, "kong_version", info.Version)
	s.mode = mode
	return mode, nil
}

// Mode is the Kong mode (ModeDB or ModeDBLess), asking Kong's GET / the
// first time when configured as auto. A failure to ask counts in Status
// like a failed apply: it is Kong being unreachable.
func (s *Syncer) Mode(ctx context.Context) (string, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	mode, err := s.detectMode(ctx)
	if err != nil {
		s.status.record(s.o.Now(), "", nil, err)
	}
	return mode, err
}

// Apply makes Kong equal to st (entities tagged managed-by only): a full
// reconcile that reads Kong and heals drift.
func (s *Syncer) Apply(ctx context.Context, st translator.State) (Result, error) {
	return s.apply(ctx, st, true)
}

// ApplyChanges brings Kong to st after registry changes, writing only what
// differs from what this replica last applied and reading nothing from Kong
// when it can (DB mode: no lists; DB-less: no push when the config is the
// same). It falls back to a full Apply when it has nothing to trust.
func (s *Syncer) ApplyChanges(ctx context.Context, st translator.State) (Result, error) {
	return s.apply(ctx, st, false)
}

func (s *Syncer) apply(ctx context.Context, st translator.State, full bool) (Result, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	start := time.Now()
	calls := s.c.calls.Load()
	mode, err := s.detectMode(ctx)
	if err != nil {
		s.status.record(s.o.Now(), "", nil, err)
		return Result{Calls: s.c.calls.Load() - calls}, err
	}
	var res Result
	switch {
	case mode == ModeDBLess:
		res, err = s.dbless.apply(ctx, st, full)
	case full:
		res, res.Refused, err = s.db.apply(ctx, newDesired(st))
	default:
		res, res.Refused, err = s.db.applyChanges(ctx, newDesired(st))
	}
	if refusedFastPath(res.Refused) {
		// The held route waits for a plugin Kong refuses: asking for an
		// apply sooner than the next full reconcile would only repeat it.
		res.RetryIn = 0
	}
	res.Mode = mode
	res.Calls = s.c.calls.Load() - calls
	res.Duration = time.Since(start)
	s.noteFastPath(mode, st, res.Refused)
	s.notePluginScope(mode, st)
	s.status.record(s.o.Now(), mode, res.Refused, err)
	return res, err
}

// ForgetApplied makes the next DB-mode apply check every upstream's targets
// (used when this replica becomes the leader: another one wrote meanwhile).
func (s *Syncer) ForgetApplied() {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.db.targetSets = map[string]string{}
	s.db.warm = false
	s.db.pluginSince, s.db.pending = time.Time{}, false // another replica may have rewritten the plugin
	s.dbless.lastHash = ""
}

var errNotLeader = errors.New("lost the kong sync lease")
