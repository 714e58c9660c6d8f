// Package kongschema validates a plugin configuration the way Kong 3.9 does,
// against the schema a go-pdk plugin server prints with -dump.
//
// Kong turns the dump's Schema into a plugin subschema (kong/db/schema/plugin_loader.lua,
// kong/db/schema/entity.lua), fills defaults with Schema:process_auto_fields in the
// "insert" context and checks the result with Schema:validate
// (kong/db/schema/init.lua). This package reproduces those two steps, with Kong's
// error texts, so that tests (the Kong-side harness and the Admin API fake) accept
// and refuse exactly what a real Kong would.
//
// It is a test instrument: nothing outside tests imports it. It must not guess:
// a schema attribute that changes validation and is not implemented here makes
// ParseDump fail, so a validator is never silently skipped.
package kongschema
