// Package shipping holds the consistency tests of everything that ships
// around the two binaries: the Dockerfile, deploy/ (compose, Kubernetes,
// systemd), kong/kong.conf and the root decK file kong.yml.
//
// The tests read those files as their users' tools would (YAML parsers,
// decK, a Kong-schema validator) and check that they agree with each other
// and with the programs: one plugin name, one start and query command, one
// socket, only images that exist, only settings the programs read.
//
// It has no non-test code and must not be imported.
package shipping
