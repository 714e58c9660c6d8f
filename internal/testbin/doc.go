// Package testbin is plumbing shared by the repository's tests: it finds the
// repository root, builds a repository binary (the plugin, adminsvc, srctl,
// test plugins) once for a test run, wraps a TestMain around that build, and
// offers a goroutine-safe buffer for process or log output.
//
// It is for test code and test-support packages only (_test.go files,
// tests/..., clienttest): it must not be imported by anything that ships, and
// it must not hold assertions, bounds or test behaviour of its own; those stay
// in the tests that use it.
package testbin
