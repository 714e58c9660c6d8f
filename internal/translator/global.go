package translator

// Plugin scope global: one service-registry plugin entity for the whole of
// Kong instead of one per registered route's service. In Kong DB mode every
// plugin-entity write makes each Kong worker rebuild its plugins iterator
// over all plugin entities, which stalls the worker for a time that grows
// with their number (0.2-0.65 s with 10 000: BENCHMARKS.md, "What stalls
// Kong's worker"); with one global instance the count stays small. That
// instance runs in registry_routes mode: it reads each registered route's
// options from the registry itself, so per-route configs are not needed in
// Kong. The response-transformer of a route with headers stays per service.

// Plugin scopes (Options.PluginScope).
const (
	// PluginScopeService: a service-registry plugin on each registered
	// route's service (the default, also when empty).
	PluginScopeService = "service"
	// PluginScopeGlobal: one global service-registry plugin (GlobalPlugin).
	PluginScopeGlobal = "global"
	// PluginScopeAuto is global in Kong DB mode and service in DB-less
	// mode. Only kongsync knows the mode: its Reconciler resolves auto
	// before translating; Translate itself takes auto as service.
	PluginScopeAuto = "auto"
)

// GlobalPluginName names the global plugin (in its id). Registry-derived
// names always hold a '_' between host and path, so no route can take it.
const GlobalPluginName = "sr-global"

// TagGlobal marks the global plugin (beside TagManaged), so the sync can
// tell it from a registered route's entities: it belongs to no route.
const TagGlobal = "sr-global"

// GlobalPluginID is the id of the global service-registry plugin.
var GlobalPluginID = ID("plugin", GlobalPluginName+"/"+PluginRegistry)

// GlobalTags are the global plugin's tags.
func GlobalTags() []string { return []string{TagManaged, TagGlobal} }

// GlobalPlugin is the global service-registry plugin: no service, route
// or consumer, the same redis settings as every other instance.
func GlobalPlugin(opts Options) Plugin {
	cfg := map[string]any{"registry": "redis", "registry_routes": true}
	if redis := redisConfig(opts); len(redis) > 0 {
		cfg["redis"] = redis
	}
	return Plugin{ID: GlobalPluginID, Name: PluginRegistry, Enabled: true, Config: cfg, Tags: GlobalTags()}
}

// IsGlobal reports whether an entity's tags mark it as the global plugin.
func IsGlobal(tags []string) bool { return managedWith(tags, TagGlobal) }

// globalScope reports whether opts ask for plugin scope global.
func globalScope(opts Options) bool { return opts.PluginScope == PluginScopeGlobal }
