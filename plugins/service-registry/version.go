package main

import (
	"fmt"
	"regexp"
)

// defaultVersion is the plugin's version when the build sets none. It must
// equal the repository's VERSION file (a test ties them), which make and the
// Dockerfile read, so a plain `go build` and `make build` report the same.
const defaultVersion = "0.1.0"

// version may be replaced at build time (-ldflags "-X main.version=1.2.3");
// checkedVersion refuses anything but x.y.z before Kong ever sees it.
var version = defaultVersion

// reSemver is x.y.z with plain decimal numbers (no leading zeros, no
// pre-release or build suffix). Kong refuses a VERSION its parser cannot
// read as x.y.z ("dev"), and quietly keeps the digits of some other strings
// (a commit hash): stricter than Kong, so what Kong shows is what we built.
var reSemver = regexp.MustCompile(`^(0|[1-9][0-9]*)\.(0|[1-9][0-9]*)\.(0|[1-9][0-9]*)$`)

// checkedVersion returns the build's version, or an error naming the bad
// value: the binary neither serves nor dumps a version Kong would refuse.
func checkedVersion() (string, error) {
	if !reSemver.MatchString(version) {
		return "", fmt.Errorf("version %q set at build time is not x.y.z, and Kong refuses a plugin whose VERSION is not: build with VERSION=x.y.z (default %s, from the VERSION file)", version, defaultVersion)
	}
	return version, nil
}
