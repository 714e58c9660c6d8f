// Command adminsvc is the registry's companion service: the go-proxy
// registry API and its /v1 extensions (package adminsvc/api), stored in
// Redis through internal/registry and kept in step with Kong by
// internal/kongsync.
//
// Subcommands: `adminsvc` serves; `adminsvc migrate up|status` runs the
// keyspace migrations; `adminsvc import routes.json` loads a GET /routes dump.
// Every setting is a flag and an SR_* environment variable (flags win).
//
// This package only parses settings and wires the parts together; request
// handling, validation and metrics belong to adminsvc/api. It must not log
// secrets (API keys, Redis passwords).
package main
