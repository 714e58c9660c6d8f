package registry

// keyspace names every Redis key of one registry prefix. Per-service keys
// share the hash tag {<service>} so one Lua script can touch them all on a
// Redis Cluster; the global indexes share the tag {_index}.
type keyspace struct{ prefix string }

func (k keyspace) svc(name, what string) string {
	return k.prefix + ":v1:{" + name + "}:" + what
}

// serviceKeys is the fixed KEYS order of every per-service script.
func (k keyspace) serviceKeys(name string) []string {
	return []string{
		k.svc(name, "service"),   // hash: name, tags (JSON), maintenance (JSON)
		k.svc(name, "instances"), // hash: id -> Instance JSON
		k.svc(name, "leases"),    // zset: id -> expiry (unix ms)
		k.svc(name, "version"),   // counter; never deleted, so it only grows
		k.svc(name, "route"),     // hash: spec (canonical JSON), registered_at
	}
}

func (k keyspace) index(what string) string { return k.prefix + ":v1:{_index}:" + what }

// indexKeys is the KEYS order of the index script.
func (k keyspace) indexKeys() []string {
	return []string{
		k.index("routes"),     // zset, score 0: "host\x00path", lexical order = host, then path
		k.index("services"),   // set of service names
		k.index("generation"), // counter bumped by every write
		k.index("epochs"),     // hash: service -> last service version applied to the indexes
		k.index("leases"),     // zset: service -> its first lease end (unix ms), for expiry sweeps
		k.index("pending"),    // zset: "service\x00token" -> start (unix ms) of a write not yet indexed
	}
}

func (k keyspace) schema() string          { return SchemaKey(k.prefix) }
func (k keyspace) channel() string         { return k.prefix + ":v1:changes" }
func routeMember(host, path string) string { return host + "\x00" + path }

// SchemaKey is where the keyspace version (SchemaVersion) lives for a key
// prefix. The registry owns it; migrations/ reads and moves it.
func SchemaKey(prefix string) string { return prefix + ":v1:meta:schema" }
