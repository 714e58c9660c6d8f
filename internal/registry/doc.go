// Package registry is the registry of record: the model (services,
// instances, routes), its Redis keyspace and the Store that reads and writes
// it over any redis.UniversalClient (standalone, Sentinel, Cluster).
//
// # Keyspace
//
// Every key starts with "<prefix>:v1:" (prefix "sr" by default). A service's
// keys share the hash tag {<service>} so one Lua script writes them all
// atomically, even on Redis Cluster:
//
//	sr:v1:{svc}:service    hash  name, tags (JSON), maintenance (JSON)
//	sr:v1:{svc}:instances  hash  instance id -> Instance JSON
//	sr:v1:{svc}:leases     zset  instance id -> lease end (unix ms)
//	sr:v1:{svc}:version    int   bumped by every write; never deleted
//	sr:v1:{svc}:route      hash  member, spec (canonical JSON), registered_at
//
// A go-proxy route maps to exactly one service, ServiceName(host, path).
// The global indexes share the tag {_index}:
//
//	sr:v1:{_index}:routes      zset  "host\x00path" (score 0, lexical order)
//	sr:v1:{_index}:services    set   service names
//	sr:v1:{_index}:generation  int   bumped by every write anywhere
//	sr:v1:{_index}:epochs      hash  service -> version last applied to the indexes
//	sr:v1:{_index}:leases      zset  service -> its first lease end (unix ms)
//	sr:v1:{_index}:pending     zset  "service\x00token" -> start (ms) of a write step 2 has not cleared
//	sr:v1:meta:schema          "1"   keyspace version (migrations/ moves it)
//
// Every write publishes "<version> <service>" on "<prefix>:v1:changes".
//
// # Atomicity across slots
//
// A Cluster script may touch one slot only, so a write is two steps: (1) one
// script on the service's slot changes the records, bumps the version and
// publishes; it returns the state it left. (2) one script on the index slot
// applies that state (present/absent) to the indexes, unless the epochs hash
// shows that a newer version of the service was applied already: concurrent
// writers may run step 2 out of order, and the service version, not the
// arrival order, decides. Records are the truth; the indexes converge to
// them.
//
// The lease index lets ExpireInstances visit only services with a lease
// due; it is maintained by the same step 2.
//
// A process dying between the steps leaves an index entry missing or
// dangling. Readers never show a half-written route: ListRoutes and
// ListServices skip an index entry whose record is gone and repair it by
// re-running step 2 from the service's current state (safe under races for
// the same epoch reason). A missing entry cannot be seen from the index, so
// the writes that can add one (RegisterRoute, PutInstance) first note
// themselves in a pending journal (sr:v1:{_index}:pending) that step 2
// clears; every index reader looks at the journal in the same round trip and
// repairs what it lists (pending.go has the crash points). The epochs hash
// keeps one small field per service ever written.
//
// The store must not validate API input beyond what keeps the keyspace sane
// (empty names or ids, braces in names, a leading '_', weights outside 0..65535): that is
// the API layer's job. It never caches: readers that need a cache (the
// plugin) build it on top (internal/discovery).
package registry
