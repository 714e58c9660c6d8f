// Package kongsync makes Kong equal to the registry. It is the only package
// that talks to Kong (through go-kong): in DB mode it lists the entities
// tagged managed-by:service-registry, diffs them against the translator's
// desired state and applies creates, updates and deletes in dependency order
// with bounded concurrency; in DB-less mode it pushes the whole declarative
// config (the operator's base kong.yml plus the registry's entities) to
// POST /config. The Reconciler runs this on every registry change and on an
// interval, under a Redis lease so only one adminsvc replica writes Kong.
//
// It must never touch an entity without the managed-by tag, never retry a
// 4xx (only 5xx and transport errors), and never block registrations: Kong
// being down only grows the pending count.
package kongsync
