// Command adminsvc is the registry's companion service: the go-proxy
// registry API (POST /register, POST /deregister, GET /routes, GET /health)
// and its /v1 extensions on Echo, stored in Redis through internal/registry
// and kept in step with Kong by internal/kongsync.
//
// Subcommands: `adminsvc` serves; `adminsvc migrate up|status` runs the
// keyspace migrations; `adminsvc import routes.json` loads a GET /routes dump.
// Every setting is a flag and an SR_* environment variable (flags win).
//
// It must not talk to Kong except through internal/kongsync, must not log
// secrets (API keys, Redis passwords), and must never fail a registration
// because Kong is unreachable.
package main
