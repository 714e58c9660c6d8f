// Package browser drives adminsvc's web console (/ui/, adminsvc/ui) in a
// real headless Chromium (Debian's chromium, through chromedp) against real
// processes: the adminsvc binary on real Redis, a Kong Admin API fake for
// its sync, and the Kong harness (tests/harness) running the real plugin
// binary, so a weight or maintenance change made in the page is checked in
// the traffic the plugin routes.
//
// One Chromium serves the whole package (a tab per check). Without a
// chromium binary the tests skip, except under CI (CI set), where they fail.
// Screenshots of every page go to $SR_BROWSER_ARTIFACTS when set, else to a
// temporary directory.
//
// It holds tests only; nothing imports it.
package browser
