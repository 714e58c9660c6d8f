// Package kongsync makes Kong equal to the registry. It is the only package
// that talks to Kong (through go-kong).
//
// DB mode is a list → plan → execute pipeline over typed entities (one file
// per kind: service.go, route.go, upstream.go, target.go, plugin.go): list
// what Kong holds tagged managed-by:service-registry (dbmode.go), compare it
// with the translator's desired state into a plan (plan.go; a value the
// tests read), and execute the plan in the one dependency order of
// entity.go (deletes downwards, creates and updates upwards) with bounded
// concurrency (execute.go). A change-triggered apply plans against what
// this replica last applied instead of listing Kong. An entity Kong refuses
// (400) is reported (Result.Refused, Syncer.Status) while the others are
// applied.
//
// DB-less mode pushes the whole declarative config to POST /config: a base
// (the operator's kong.yml, or without one what Kong serves on GET /config)
// minus the entities tagged as ours, plus ours (declarative.go, dbless.go).
//
// The fast path's catch-all is ours like the rest, except that it is left
// out while an operator's route already catches "/" without hosts
// (fastpath.go), and its route is written after its plugin.
//
// In plugin scope global (scope.go) the route services carry no
// service-registry plugin and one global plugin of ours serves them: it is
// written before any delete and deleted after every write (plan.go), and
// Kong refusing it (an operator's own global one: 409) is a refusal like
// a 400. Scope auto is resolved by the Kong mode: global in DB mode.
//
// The Reconciler runs this on every registry change and on an interval,
// under a Redis lease so only one adminsvc replica writes Kong.
//
// It must never touch an entity without the managed-by tag, never retry a
// 4xx (only 5xx and transport errors, in client.retry, the one retry loop),
// and never block registrations: Kong being down only grows the pending
// count.
package kongsync
