package browser

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/chromedp/chromedp"

	"github.com/kong-service-registry/service-registry/internal/testbin"
)

var adminsvcBin, pluginBin string

func TestMain(m *testing.M) {
	testbin.Main(m, func(dir string) (err error) {
		if adminsvcBin, err = testbin.Build(dir, "./adminsvc", "adminsvc"); err != nil {
			return err
		}
		// Kong runs a go-pdk plugin by its executable's name.
		pluginBin, err = testbin.Build(dir, "./plugins/service-registry", "service-registry", "CGO_ENABLED=0")
		return err
	})
}

// chromiumPath finds the browser: $SR_CHROMIUM, else Debian's chromium or
// another Chrome on PATH; "" when there is none.
func chromiumPath() string {
	if p := os.Getenv("SR_CHROMIUM"); p != "" {
		if p, err := exec.LookPath(p); err == nil {
			return p
		}
		return ""
	}
	for _, name := range []string{"chromium", "chromium-browser", "google-chrome", "google-chrome-stable"} {
		if p, err := exec.LookPath(name); err == nil {
			return p
		}
	}
	return ""
}

// startBrowser starts the one Chromium of a test run and returns the
// context tabs are opened from. No browser: skip, or fail under CI.
func startBrowser(t *testing.T) context.Context {
	t.Helper()
	path := chromiumPath()
	if path == "" {
		if os.Getenv("CI") != "" {
			t.Fatal("no chromium found and CI is set: the browser tests must run in CI (apt-get install chromium)")
		}
		t.Skip("no chromium found (install Debian's chromium or set SR_CHROMIUM): browser tests skipped")
	}
	opts := []chromedp.ExecAllocatorOption{
		chromedp.ExecPath(path),
		chromedp.UserDataDir(t.TempDir()),
		chromedp.Flag("headless", true),
		chromedp.Flag("disable-gpu", true),
		// Root (CI, containers) cannot use Chromium's sandbox.
		chromedp.Flag("no-sandbox", true),
		chromedp.Flag("no-first-run", true),
		chromedp.Flag("no-default-browser-check", true),
		// Without these Chromium keeps calling home, which on a closed
		// network only floods it with failing connections.
		chromedp.Flag("disable-quic", true),
		chromedp.Flag("disable-background-networking", true),
		chromedp.Flag("disable-component-update", true),
		chromedp.Flag("disable-sync", true),
		chromedp.Flag("disable-extensions", true),
		chromedp.Flag("disable-default-apps", true),
		chromedp.Flag("mute-audio", true),
		// Screenshots as wide as the viewport asked for.
		chromedp.Flag("hide-scrollbars", true),
		chromedp.Flag("disable-dev-shm-usage", true),
		chromedp.WindowSize(1280, 800),
	}
	actx, cancelAlloc := chromedp.NewExecAllocator(context.Background(), opts...)
	bctx, cancelBrowser := chromedp.NewContext(actx)
	t.Cleanup(func() { cancelBrowser(); cancelAlloc() })
	// The first Run starts the browser; its context must not time out.
	if _, err := chromedp.Run(bctx, chromedp.Evaluate[string](`navigator.userAgent`)); err != nil {
		t.Fatalf("starting %s: %v", path, err)
	}
	return bctx
}

// tab is one browser tab with its console watched: any error, uncaught
// exception or failed load the page reports fails the test at its end,
// unless it matches an expected pattern.
type tab struct {
	t        *testing.T
	ctx      context.Context
	mu       sync.Mutex
	errs     []string
	expected []string
}

func newTab(t *testing.T, browser context.Context) *tab {
	t.Helper()
	ctx, cancel := chromedp.NewContext(browser)
	tb := &tab{t: t, ctx: ctx}
	msgs := chromedp.Console(ctx)
	done := make(chan struct{})
	go func() {
		defer close(done)
		for m, err := range msgs {
			if err != nil {
				return
			}
			if m.Type == chromedp.ConsoleError || m.IsException() {
				tb.mu.Lock()
				tb.errs = append(tb.errs, fmt.Sprintf("%s (%s:%d)", m.String(), m.URL, m.Line))
				tb.mu.Unlock()
			}
		}
	}()
	t.Cleanup(func() {
		cancel()
		<-done
		for _, e := range tb.consoleErrors() {
			t.Errorf("browser console: %s", e)
		}
	})
	return tb
}

// expect allows console errors containing s (a test provoking one).
func (tb *tab) expect(s string) {
	tb.mu.Lock()
	defer tb.mu.Unlock()
	tb.expected = append(tb.expected, s)
}

func (tb *tab) consoleErrors() []string {
	tb.mu.Lock()
	defer tb.mu.Unlock()
	var out []string
outer:
	for _, e := range tb.errs {
		for _, x := range tb.expected {
			if strings.Contains(e, x) {
				continue outer
			}
		}
		out = append(out, e)
	}
	return out
}

// do runs steps with a deadline (a stuck page fails instead of hanging).
func (tb *tab) do(steps ...chromedp.Action[chromedp.Void]) {
	tb.t.Helper()
	ctx, cancel := context.WithTimeout(tb.ctx, 30*time.Second)
	defer cancel()
	for {
		err := chromedp.Do(ctx, steps...)
		// A live page may re-render the element between chromedp finding
		// it and acting on it (an event arrived): find it again. Only a
		// single step is repeated, so nothing is typed twice.
		if err != nil && len(steps) == 1 && ctx.Err() == nil && strings.Contains(err.Error(), "Could not find node with given id") {
			continue
		}
		if err != nil {
			tb.t.Fatalf("browser: %v\n%s", err, tb.dump())
		}
		return
	}
}

// eval evaluates a JavaScript expression in the page.
func eval[T any](tb *tab, expr string) T {
	tb.t.Helper()
	ctx, cancel := context.WithTimeout(tb.ctx, 30*time.Second)
	defer cancel()
	v, err := chromedp.Run(ctx, chromedp.Evaluate[T](expr))
	if err != nil {
		tb.t.Fatalf("evaluating %s: %v", expr, err)
	}
	return v
}

// waitJS waits until the expression is truthy in the page.
func (tb *tab) waitJS(what, expr string, timeout time.Duration) {
	tb.t.Helper()
	ctx, cancel := context.WithTimeout(tb.ctx, timeout+5*time.Second)
	defer cancel()
	if _, err := chromedp.Run(ctx, chromedp.Poll[chromedp.Void](expr, chromedp.WithPollingTimeout(timeout))); err != nil {
		tb.t.Fatalf("waiting for %s: %v\n%s", what, err, tb.dump())
	}
}

// dump is the page's visible text, for failure messages.
func (tb *tab) dump() string {
	ctx, cancel := context.WithTimeout(tb.ctx, 5*time.Second)
	defer cancel()
	s, err := chromedp.Run(ctx, chromedp.Evaluate[string](`location.href + "\n" + document.body.innerText`))
	if err != nil {
		return "(page text unavailable: " + err.Error() + ")"
	}
	return "page:\n" + s
}

// artifactsDir is where screenshots go: $SR_BROWSER_ARTIFACTS or a
// temporary directory of the test.
func artifactsDir(t *testing.T) string {
	if d := os.Getenv("SR_BROWSER_ARTIFACTS"); d != "" {
		if err := os.MkdirAll(d, 0o755); err != nil {
			t.Fatal(err)
		}
		return d
	}
	return t.TempDir()
}

// screenshot saves the whole page as dir/name.png at the given width.
func (tb *tab) screenshot(dir, name string, width, height int64) string {
	tb.t.Helper()
	var png []byte
	tb.do(chromedp.EmulateViewport(width, height),
		// Two animation frames: the layout of the new width is painted.
		chromedp.Evaluate[chromedp.Void](`new Promise(r => requestAnimationFrame(() => requestAnimationFrame(r)))`, chromedp.EvalAwaitPromise),
		chromedp.Func(func(ctx context.Context, t *chromedp.Target) (err error) {
			png, err = chromedp.FullScreenshot(100)(ctx, t)
			return err
		}))
	p := filepath.Join(dir, name+".png")
	if err := os.WriteFile(p, png, 0o644); err != nil {
		tb.t.Fatal(err)
	}
	return p
}
