package translator

// The fast path (issue 16): one catch-all Kong route that carries the
// service-registry plugin in fast_path mode, so a route registered a moment
// ago answers through Kong before Kong's router has its dedicated route.
// Kong ranks a route without hosts and with the shortest path ("/") below
// every route with a host or a longer path, so the dedicated route takes
// over as soon as Kong's router has it.

// FastPathName names the catch-all's service and route. Registry-derived
// names always hold a '_' between host and path (registry.ServiceName), so
// no registered route can take it.
const FastPathName = "sr-fast-path"

// TagFastPath marks the catch-all's entities (beside TagManaged), so the
// sync can tell them from a registered route's: they have no sr-host and
// sr-path tags because they belong to no route.
const TagFastPath = "sr-fast-path"

// FastPathPluginID is the id of the catch-all's service-registry plugin.
var FastPathPluginID = ID("plugin", FastPathName+"/"+PluginRegistry)

// FastPathTags are the tags of every catch-all entity.
func FastPathTags() []string { return []string{TagManaged, TagFastPath} }

// fastPathUpstream has no targets on purpose: if the plugin server is
// gone and Kong fails open, Kong answers its own 503 at once instead of
// resolving or connecting anywhere.
const fastPathUpstream = FastPathName + ".upstream"

// FastPath returns the catch-all service (its route and plugin nested) and
// its upstream. The plugin config carries the same redis settings as every
// other instance, since it reads the same registry.
func FastPath(opts Options) (Service, Upstream) {
	tags := FastPathTags()
	cfg := map[string]any{"registry": "redis", "fast_path": true}
	if redis := redisConfig(opts); len(redis) > 0 {
		cfg["redis"] = redis
	}
	svc := Service{
		ID:             ID("service", FastPathName),
		Name:           FastPathName,
		Protocol:       "http",
		Host:           fastPathUpstream,
		Port:           80,
		ConnectTimeout: kongDefaultTimeoutMS,
		ReadTimeout:    kongDefaultTimeoutMS,
		WriteTimeout:   kongDefaultTimeoutMS,
		Retries:        kongDefaultRetries,
		Tags:           tags,
		Routes: []Route{{
			ID:   ID("route", FastPathName),
			Name: FastPathName,
			// No hosts, no methods, the shortest path: the lowest rank in
			// Kong's router. Hosts stays nil so the key is not sent at all:
			// Kong then stores null, while an empty list is stored as [] and
			// Kong's default router (traditional_compatible, get_priority)
			// sets the plain-host-only bit for any hosts table, even empty,
			// which ranked ours above paths-only and headers-only operator
			// routes. preserve_host as on every dedicated route, so the
			// backend sees the client's Host either way.
			Protocols:    []string{"http", "https"},
			Paths:        []string{"/"},
			StripPath:    false,
			PreserveHost: true,
			Tags:         tags,
		}},
		Plugins: []Plugin{{
			ID:      FastPathPluginID,
			Name:    PluginRegistry,
			Enabled: true,
			Config:  cfg,
			Tags:    tags,
		}},
	}
	up := Upstream{
		ID:        ID("upstream", fastPathUpstream),
		Name:      fastPathUpstream,
		Algorithm: "round-robin",
		Tags:      tags,
		Targets:   []Target{},
	}
	return svc, up
}

// IsFastPath reports whether an entity's tags mark it as the catch-all's.
func IsFastPath(tags []string) bool { return managedWith(tags, TagFastPath) }

// managedWith reports whether tags hold TagManaged and tag: one of our
// entities that belongs to no route (the catch-all's, the global plugin).
func managedWith(tags []string, tag string) bool {
	managed, with := false, false
	for _, t := range tags {
		managed = managed || t == TagManaged
		with = with || t == tag
	}
	return managed && with
}

// redisConfig is the plugin's config.redis record from opts.Redis, without
// empty values so the plugin's schema defaults apply.
func redisConfig(opts Options) map[string]any {
	redis := make(map[string]any, len(opts.Redis))
	for k, v := range opts.Redis {
		if v == nil || v == "" {
			continue
		}
		redis[k] = v
	}
	return redis
}
