package kongsync

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/json"
	"fmt"
	"log/slog"
	"net/http"
	"strings"
	"sync"

	"github.com/kong-service-registry/service-registry/internal/translator"
)

// dblessSync pushes the whole declarative config: a base plus the
// registry's entities. A push replaces everything in Kong, so it happens
// only when the config changed or Kong lost it.
//
// The base is the operator's file (Options.BaseConfig) when there is one.
// Without it, the base is what Kong serves at the time of the push (GET
// /config), so the operator's own entities survive every push: everything
// not tagged as ours is kept, and nothing is pushed when Kong's config
// cannot be read.
type dblessSync struct {
	c        *client
	log      *slog.Logger
	base     map[string]any
	fromKong bool
	warn     sync.Once
	// lastBody is the hash of the last pushed body; lastHash is Kong's
	// configuration_hash right after that push.
	lastBody [32]byte
	lastHash string
	// lastRefused are the routes dropped from the last push: still refused
	// while the config stays the same.
	lastRefused []Refusal
	// shadow is the operator's route catching "/" without hosts in the
	// base of the last push: our catch-all is left out while it is there.
	shadow string
	// globalShadow is the operator's own global service-registry plugin
	// in the base of the last push: ours is left out while it is there.
	globalShadow string
}

type kongStatus struct {
	ConfigurationHash string `json:"configuration_hash"`
}

func (d *dblessSync) apply(ctx context.Context, st translator.State, full bool) (Result, error) {
	fast := wantsFastPath(st)
	st = d.fileShadow(st, fast)
	if !d.fromKong {
		st = d.yieldGlobal(d.base, st)
	}
	body, err := BuildDeclarative(d.base, st)
	if err != nil {
		return Result{}, err
	}
	// Without a base file, body is ours alone: a change of ours (or of
	// Kong's hash) is what makes a push.
	sum := sha256.Sum256(body)
	// After a registry change that does not change the config (a heartbeat),
	// Kong is not even asked; full reconciles check its hash.
	if !full && sum == d.lastBody && d.lastHash != "" {
		return Result{Unchanged: len(st.Services), Refused: d.lastRefused}, nil
	}
	var status kongStatus
	if err := d.c.do(ctx, http.MethodGet, "/status", nil, nil, &status); err != nil {
		return Result{}, err
	}
	// Kong restarted (empty hash) or someone else pushed: Kong's hash moved.
	if sum == d.lastBody && d.lastHash != "" && status.ConfigurationHash == d.lastHash {
		return Result{Unchanged: len(st.Services), Refused: d.lastRefused}, nil
	}
	base := d.base
	if d.fromKong {
		if base, err = d.kongConfig(ctx); err != nil {
			// Never push without knowing what we would drop.
			return Result{}, err
		}
		// The sum above stays that of ours with the catch-all, so a
		// shadowed catch-all does not look like a change every time.
		if d.shadow = ""; fast {
			d.shadow = declarativeCatchAll(base)
		}
		if d.shadow != "" {
			st = withoutFastPath(st)
		}
		st = d.yieldGlobal(base, st)
		if body, err = BuildDeclarative(base, st); err != nil {
			return Result{}, err
		}
	}
	res := Result{Pushed: true, Updated: len(st.Services)}
	if err := d.push(ctx, body); err != nil {
		// Kong refused the config. If the entities it names are registry
		// routes', push without those routes so one bad route does not keep
		// every other change out of Kong; the refused ones are reported.
		bad := refusedRoutes(err)
		if len(bad) == 0 {
			return Result{}, err
		}
		kept, dropped := withoutRoutes(st, bad)
		if len(dropped) == 0 {
			return Result{}, err
		}
		body2, berr := BuildDeclarative(base, kept)
		if berr != nil {
			return Result{}, berr
		}
		if err2 := d.push(ctx, body2); err2 != nil {
			return Result{}, fmt.Errorf("%w (and again without the %d routes kong refused: %w)", err, len(dropped), err2)
		}
		res.Updated, res.Refused = len(kept.Services), dropped
	}
	d.lastBody, d.lastRefused = sum, res.Refused
	if err := d.c.do(ctx, http.MethodGet, "/status", nil, nil, &status); err != nil {
		d.lastHash = ""
		return res, nil
	}
	d.lastHash = status.ConfigurationHash
	// Kong reports the empty hash when it holds no config, as after a
	// restart. Read right after our push, it means Kong lost the config in
	// between (the read is a separate call): keeping it would make the lost
	// state look like ours, and nothing would push again until the registry
	// changed. Left unknown, the next reconcile pushes. Only a push of an
	// empty config is answered with the empty hash.
	if d.lastHash == emptyConfigHash && !emptyDeclarative(body) {
		d.lastHash = ""
	}
	return res, nil
}

// emptyConfigHash is Kong's configuration_hash for no config
// (DECLARATIVE_EMPTY_CONFIG_HASH).
var emptyConfigHash = strings.Repeat("0", 32)

// emptyDeclarative reports whether a declarative config holds no entity.
func emptyDeclarative(body []byte) bool {
	var doc map[string]any
	if json.Unmarshal(body, &doc) != nil {
		return false
	}
	for _, v := range doc {
		if list, ok := v.([]any); ok && len(list) > 0 {
			return false
		}
	}
	return true
}

// kongConfig reads the declarative config Kong serves (GET /config answers
// {"config": "<yaml>"}, entities flat, foreign keys as ids, and
// _transform: false, which is kept so nothing Kong already transformed,
// such as hashed credentials, is transformed twice).
func (d *dblessSync) kongConfig(ctx context.Context) (map[string]any, error) {
	var out struct {
		Config string `json:"config"`
	}
	if err := d.c.do(ctx, http.MethodGet, "/config", nil, nil, &out); err != nil {
		return nil, fmt.Errorf("reading the config kong serves, to keep the entities not ours: %w", err)
	}
	base, err := parseBase([]byte(out.Config))
	if err != nil {
		return nil, fmt.Errorf("reading the config kong serves: %w", err)
	}
	kept := 0
	for _, v := range base {
		if list, ok := v.([]any); ok {
			kept += len(unmanaged(list))
		}
	}
	d.warn.Do(func() {
		d.log.Warn("no kong base config (SR_KONG_BASE_CONFIG): every DB-less push keeps the entities kong serves "+
			"that are not tagged "+translator.TagManaged, "kept_now", kept)
	})
	return base, nil
}

func (d *dblessSync) push(ctx context.Context, body []byte) error {
	err := d.c.retry(ctx, func() error {
		return d.c.kc.ReloadDeclarativeRawConfig(ctx, bytes.NewReader(body), false, true)
	})
	if err != nil {
		return fmt.Errorf("kong POST /config: %w", err)
	}
	return nil
}

// fileShadow leaves the catch-all out of st when the operator's base file
// has a route in its way (the file does not change while we run). Without
// a file the base, and so the check, comes from Kong at push time.
func (d *dblessSync) fileShadow(st translator.State, fast bool) translator.State {
	if !fast {
		d.shadow = ""
		return st
	}
	if d.fromKong {
		return st
	}
	if d.shadow = declarativeCatchAll(d.base); d.shadow != "" {
		return withoutFastPath(st)
	}
	return st
}

// yieldGlobal leaves our global plugin out of st when base holds an
// operator's own global service-registry plugin, which Kong would refuse
// ours beside (one global instance per plugin name): the operator's config
// wins, and serves the routes' services by their Kong names. The base
// file does not change while we run; a base read from Kong is checked at
// each push.
func (d *dblessSync) yieldGlobal(base map[string]any, st translator.State) translator.State {
	d.globalShadow = ""
	if len(st.Plugins) == 0 {
		return st
	}
	if d.globalShadow = declarativeGlobal(base, translator.PluginRegistry); d.globalShadow != "" {
		return translator.ServiceScope(st)
	}
	return st
}
