package kongsync

import (
	"context"
	"fmt"

	"github.com/kong-service-registry/service-registry/internal/translator"
)

// Plugin scope global (translator/global.go) writes one global
// service-registry plugin instead of one per route service. It is the
// choice for Kong DB mode, where each plugin-entity write makes every Kong
// worker rebuild its plugins iterator over all plugin entities; DB-less
// Kong rebuilds everything on each push anyway, so service scope costs
// nothing more there. Scope auto means exactly that, and is resolved here
// because only the sync learns the mode (from Kong's GET / when the mode
// is auto too).

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

// notePluginScope records the plugin scope of st for Status and logs when
// it moves, so an operator's global plugin in a DB-less base is logged
// once, not every reconcile.
func (s *Syncer) notePluginScope(mode string, st translator.State) {
	scope, shadow := translator.PluginScopeService, ""
	if hasGlobal(st) {
		scope = translator.PluginScopeGlobal
		if mode == ModeDBLess {
			shadow = s.dbless.globalShadow
		}
	}
	if !s.status.setPluginScope(scope, shadow) {
		return
	}
	if shadow != "" {
		s.log.Warn("the kong base config has its own global service-registry plugin: ours (plugin scope global) is left out; "+
			"registered routes are served by that plugin's config, by kong service name, without their own options",
			"plugin", shadow)
		return
	}
	s.log.Info("plugin scope", "scope", scope)
}
