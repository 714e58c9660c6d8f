// Package migrations moves the registry's Redis keyspace forward, like
// `kong migrations up`: each Migration has a version; the keyspace's current
// version lives at <prefix>:v1:meta:schema. Up applies the missing ones in
// order under a short Redis lock; a keyspace newer than this binary knows is
// refused (ErrNewerKeyspace) so an old adminsvc never writes a format it does
// not understand.
//
// It must not touch keys outside the registry prefix, and a migration must
// be safe to re-run after a crash (idempotent).
package migrations
