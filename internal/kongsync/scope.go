package kongsync

import (
	"context"
	"encoding/json"
	"fmt"

	"github.com/kong-service-registry/service-registry/internal/translator"
)

// Plugin scope global (translator/global.go) writes one global
// service-registry plugin instead of one per route service. It pays in Kong
// DB mode, where each plugin-entity write makes every Kong worker rebuild
// its plugins iterator over all plugin entities; DB-less Kong rebuilds
// everything on each push anyway, so service scope costs nothing more
// there. Scope auto means exactly that, and is resolved here because only
// the sync learns the mode (from Kong's GET / when the mode is auto too).
// adminsvc's default is service.

// checkPluginScope refuses an unknown Options.PluginScope.
func checkPluginScope(scope string) error {
	switch scope {
	case "", translator.PluginScopeService, translator.PluginScopeGlobal, translator.PluginScopeAuto:
		return nil
	}
	return fmt.Errorf("plugin scope %q: expected auto, service or global", scope)
}

// scopeFor is plugin scope auto in Kong mode mode.
func scopeFor(mode string) string {
	if mode == ModeDB {
		return translator.PluginScopeGlobal
	}
	return translator.PluginScopeService
}

// translateOptions are the reconciler's translator options with plugin
// scope auto resolved by the Kong mode.
func (r *Reconciler) translateOptions(ctx context.Context) (translator.Options, error) {
	o := r.o.Translate
	if o.PluginScope != translator.PluginScopeAuto {
		return o, nil
	}
	mode, err := r.o.Syncer.Mode(ctx)
	if err != nil {
		return o, err
	}
	o.PluginScope = scopeFor(mode)
	return o, nil
}

// hasGlobal reports whether st holds our global plugin.
func hasGlobal(st translator.State) bool {
	for _, p := range st.Plugins {
		if translator.IsGlobal(p.Tags) {
			return true
		}
	}
	return false
}

// serviceScope turns d (in place) into plugin scope service: our global
// plugin out, each route service's own service-registry plugin in. The
// sync falls back to it while an operator's own global service-registry
// plugin is in Kong, since Kong holds one global instance per plugin and a
// plugin on a service takes precedence over a global one: the registered
// routes keep their own options, and the operator's plugin serves the rest.
func (d desired) serviceScope() desired {
	for id, e := range d.byKind[kindPlugin] {
		if global(e) {
			delete(d.byKind[kindPlugin], id)
		}
	}
	for _, e := range d.fallback {
		d.byKind[kindPlugin][e.id()] = e
	}
	return d
}

// globalProbe is what the plugin listing reads of each plugin first, to
// spot an operator's global service-registry plugin (listAllSpotting).
type globalProbe struct {
	ID           string          `json:"id"`
	Name         string          `json:"name"`
	InstanceName string          `json:"instance_name"`
	Tags         []string        `json:"tags"`
	Service      json.RawMessage `json:"service"`
	Route        json.RawMessage `json:"route"`
	Consumer     json.RawMessage `json:"consumer"`
}

func (p globalProbe) tagList() []string { return p.Tags }

// spot reports whether p is a global service-registry plugin not tagged
// as ours, and its label.
func (p globalProbe) spot() (string, bool) {
	if p.Name != translator.PluginRegistry || hasTag(p.Tags, translator.TagManaged) ||
		!emptyJSON(p.Service) || !emptyJSON(p.Route) || !emptyJSON(p.Consumer) {
		return "", false
	}
	if p.InstanceName != "" {
		return p.InstanceName, true
	}
	return p.ID, true
}

// hasGlobal reports whether d holds our global plugin.
func (d desired) hasGlobal() bool {
	_, ok := d.byKind[kindPlugin][translator.GlobalPluginID]
	return ok
}

// notePluginScope records the plugin scope of st for Status and logs when
// it moves, so an operator's global plugin is logged once, not every
// reconcile.
func (s *Syncer) notePluginScope(mode string, st translator.State) {
	scope, shadow := translator.PluginScopeService, ""
	if hasGlobal(st) {
		scope = translator.PluginScopeGlobal
		shadow = s.db.globalShadow
		if mode == ModeDBLess {
			shadow = s.dbless.globalShadow
		}
		if shadow != "" {
			scope = translator.PluginScopeService
		}
	}
	if !s.status.setPluginScope(scope, shadow) {
		return
	}
	if shadow != "" {
		s.log.Warn("kong has an operator's own global service-registry plugin: ours (plugin scope global) is left out "+
			"and each registered route's service carries its own plugin instead (plugin scope service)",
			"plugin", shadow)
		return
	}
	s.log.Info("plugin scope", "scope", scope)
}
