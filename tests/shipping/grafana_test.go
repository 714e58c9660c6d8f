package shipping

import (
	"encoding/json"
	"fmt"
	"go/ast"
	"go/parser"
	"go/token"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"sort"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/kong-service-registry/service-registry/internal/redistest"
	"github.com/kong-service-registry/service-registry/internal/testbin"
)

// The Grafana dashboard shipped in deploy/grafana. Grafana has no offline
// validator, so this checks what its dashboard model requires to import
// and render (schema fields, panel layout, data source references,
// variables) and that every query names a metric the programs expose.

type gfTarget struct {
	RefID      string          `json:"refId"`
	Expr       string          `json:"expr"`
	Datasource json.RawMessage `json:"datasource"`
}

type gfPanel struct {
	ID         int             `json:"id"`
	Type       string          `json:"type"`
	Title      string          `json:"title"`
	GridPos    *gfGrid         `json:"gridPos"`
	Datasource json.RawMessage `json:"datasource"`
	Targets    []gfTarget      `json:"targets"`
	Panels     []gfPanel       `json:"panels"`
}

type gfGrid struct{ H, W, X, Y int }

type gfVar struct {
	Name       string          `json:"name"`
	Type       string          `json:"type"`
	Query      json.RawMessage `json:"query"`
	Definition string          `json:"definition"`
	Datasource json.RawMessage `json:"datasource"`
}

type gfDashboard struct {
	UID           string `json:"uid"`
	Title         string `json:"title"`
	SchemaVersion int    `json:"schemaVersion"`
	Version       *int   `json:"version"`
	Time          *struct{ From, To string }
	Panels        []gfPanel `json:"panels"`
	Templating    *struct{ List []gfVar }
	Annotations   json.RawMessage `json:"annotations"`
}

func loadDashboard(t *testing.T) gfDashboard {
	t.Helper()
	raw := readFile(t, "deploy", "grafana", "service-registry.json")
	var d gfDashboard
	dec := json.NewDecoder(strings.NewReader(string(raw)))
	if err := dec.Decode(&d); err != nil {
		t.Fatalf("deploy/grafana/service-registry.json: %v", err)
	}
	return d
}

// grafanaBuiltins are the variables Grafana defines itself.
var grafanaBuiltins = map[string]bool{"__rate_interval": true, "__interval": true, "__interval_ms": true,
	"__range": true, "__range_s": true, "__range_ms": true, "__dashboard": true, "__name": true}

var varRef = regexp.MustCompile(`\$\{?([A-Za-z_][A-Za-z0-9_]*)`)

func TestGrafanaDashboardStructure(t *testing.T) {
	d := loadDashboard(t)
	if d.Title == "" || !regexp.MustCompile(`^[A-Za-z0-9_-]{1,40}$`).MatchString(d.UID) {
		t.Errorf("title %q / uid %q: both required, uid at most 40 of [A-Za-z0-9_-]", d.Title, d.UID)
	}
	// 36 is Grafana 9.0's model (timeseries panels, datasource refs as objects).
	if d.SchemaVersion < 36 || d.Version == nil || d.Time == nil || d.Time.From == "" || d.Time.To == "" || d.Templating == nil || len(d.Annotations) == 0 {
		t.Errorf("schemaVersion %d (want ≥ 36), version, time, templating and annotations are required", d.SchemaVersion)
	}
	vars := map[string]gfVar{}
	for _, v := range d.Templating.List {
		if v.Name == "" || v.Type == "" || vars[v.Name].Name != "" {
			t.Errorf("variable %+v: needs a unique name and a type", v)
		}
		vars[v.Name] = v
	}
	dsVar := func(where string, raw json.RawMessage) {
		if len(raw) == 0 {
			t.Errorf("%s: no datasource", where)
			return
		}
		var ds struct{ Type, UID string }
		if err := json.Unmarshal(raw, &ds); err != nil || ds.Type != "prometheus" {
			t.Errorf("%s: datasource %s: want {type: prometheus, uid: ...}", where, raw)
			return
		}
		name := strings.TrimSuffix(strings.TrimPrefix(ds.UID, "${"), "}")
		if v, ok := vars[name]; !ok || v.Type != "datasource" {
			t.Errorf("%s: datasource uid %q is not a datasource variable of the dashboard", where, ds.UID)
		}
	}
	usesVars := func(where, s string) {
		for _, m := range varRef.FindAllStringSubmatch(s, -1) {
			if _, ok := vars[m[1]]; !ok && !grafanaBuiltins[m[1]] {
				t.Errorf("%s: uses $%s, which is not defined", where, m[1])
			}
		}
	}
	for _, v := range d.Templating.List {
		if v.Type == "query" {
			dsVar("variable "+v.Name, v.Datasource)
			usesVars("variable "+v.Name, v.Definition)
		}
	}
	ids := map[int]bool{}
	var boxes []gfPanel
	panels := flattenPanels(d.Panels)
	if len(panels) < 5 {
		t.Fatalf("%d panels: the dashboard is empty", len(panels))
	}
	for _, p := range panels {
		where := fmt.Sprintf("panel %d %q", p.ID, p.Title)
		if p.ID <= 0 || ids[p.ID] {
			t.Errorf("%s: ids must be positive and unique", where)
		}
		ids[p.ID] = true
		if p.Title == "" {
			t.Errorf("%s: no title", where)
		}
		g := p.GridPos
		if g == nil || g.W < 1 || g.H < 1 || g.X < 0 || g.Y < 0 || g.X+g.W > 24 {
			t.Errorf("%s: gridPos %+v outside Grafana's 24-column grid", where, g)
			continue
		}
		boxes = append(boxes, p)
		switch p.Type {
		case "row":
			if len(p.Targets) != 0 || g.H != 1 || g.W != 24 {
				t.Errorf("%s: a row is 24×1 and queries nothing", where)
			}
			continue
		case "timeseries", "stat", "gauge", "bargauge", "table", "state-timeline", "text":
		default:
			t.Errorf("%s: panel type %q is not one Grafana ships", where, p.Type)
		}
		dsVar(where, p.Datasource)
		if len(p.Targets) == 0 {
			t.Errorf("%s: no query", where)
		}
		refs := map[string]bool{}
		for _, tg := range p.Targets {
			if tg.RefID == "" || refs[tg.RefID] {
				t.Errorf("%s: refIds must be set and unique: %q", where, tg.RefID)
			}
			refs[tg.RefID] = true
			if err := checkPromQL(tg.Expr); err != nil {
				t.Errorf("%s %s: %v in %q", where, tg.RefID, err, tg.Expr)
			}
			usesVars(where, tg.Expr)
		}
	}
	for i, a := range boxes {
		for _, b := range boxes[i+1:] {
			if overlap(a.GridPos, b.GridPos) {
				t.Errorf("panels %q and %q overlap", a.Title, b.Title)
			}
		}
	}
}

func flattenPanels(ps []gfPanel) []gfPanel {
	var out []gfPanel
	for _, p := range ps {
		out = append(out, p)
		out = append(out, flattenPanels(p.Panels)...)
	}
	return out
}

func overlap(a, b *gfGrid) bool {
	return a.X < b.X+b.W && b.X < a.X+a.W && a.Y < b.Y+b.H && b.Y < a.Y+a.H
}

// checkPromQL catches what would make Prometheus refuse a query outright:
// unbalanced brackets and quotes, an empty query.
func checkPromQL(q string) error {
	if strings.TrimSpace(q) == "" {
		return fmt.Errorf("empty query")
	}
	var stack []rune
	pairs := map[rune]rune{')': '(', ']': '[', '}': '{'}
	inStr := false
	for _, c := range q {
		switch {
		case c == '"':
			inStr = !inStr
		case inStr:
		case c == '(' || c == '[' || c == '{':
			stack = append(stack, c)
		case pairs[c] != 0:
			if len(stack) == 0 || stack[len(stack)-1] != pairs[c] {
				return fmt.Errorf("unbalanced %q", c)
			}
			stack = stack[:len(stack)-1]
		}
	}
	if inStr || len(stack) > 0 {
		return fmt.Errorf("unclosed quote or bracket")
	}
	return nil
}

var (
	promStrings  = regexp.MustCompile(`"(?:[^"\\]|\\.)*"`)
	promMatchers = regexp.MustCompile(`\{[^{}]*\}|\[[^\[\]]*\]`)
	promGrouping = regexp.MustCompile(`\b(by|without|on|ignoring|group_left|group_right)\s*\([^()]*\)`)
	promIdent    = regexp.MustCompile(`[A-Za-z_:][A-Za-z0-9_:]*`)
	promWords    = map[string]bool{"and": true, "or": true, "unless": true, "bool": true, "offset": true,
		"by": true, "without": true, "on": true, "ignoring": true, "group_left": true, "group_right": true, "inf": true, "nan": true}
)

// metricNames returns the metric names a PromQL query reads: identifiers
// outside label matchers, ranges and groupings that are not functions or
// keywords.
func metricNames(q string) []string {
	q = promStrings.ReplaceAllString(q, `""`)
	q = varRef.ReplaceAllString(q, "")
	for prev := ""; prev != q; {
		prev = q
		q = promMatchers.ReplaceAllString(q, " ")
		q = promGrouping.ReplaceAllString(q, " ")
	}
	var out []string
	for _, loc := range promIdent.FindAllStringIndex(q, -1) {
		name := q[loc[0]:loc[1]]
		rest := strings.TrimLeft(q[loc[1]:], " ")
		if promWords[strings.ToLower(name)] || strings.HasPrefix(rest, "(") {
			continue
		}
		if loc[0] > 0 && (q[loc[0]-1] >= '0' && q[loc[0]-1] <= '9' || q[loc[0]-1] == '.') {
			continue // the exponent or unit of a number
		}
		out = append(out, name)
	}
	return out
}

func TestMetricNamesOfQueries(t *testing.T) {
	for q, want := range map[string]string{
		`sum by (code) (rate(sr_http_requests_total{job=~"$job"}[$__rate_interval]))`:            "sr_http_requests_total",
		`histogram_quantile(0.95, sum by (le) (rate(a_bucket{x="y"}[5m]))) / on(i) group_left b`: "a_bucket b",
		`max(up) > 1e3 and bool c`: "up c",
	} {
		if got := strings.Join(metricNames(q), " "); got != want {
			t.Errorf("metricNames(%q) = %q, want %q", q, got, want)
		}
	}
}

// TestGrafanaQueriesNameExposedMetrics: every metric a dashboard query or
// variable reads is one adminsvc exposes (its running /metrics) or one the
// plugin registers (its collectors' descriptors in the source: its labelled
// series exist only after traffic).
func TestGrafanaQueriesNameExposedMetrics(t *testing.T) {
	d := loadDashboard(t)
	exposed := adminsvcMetricNames(t)
	plugin := pluginMetricNames(t)
	if len(plugin) == 0 {
		t.Fatal("plugins/service-registry registers no Prometheus metric")
	}
	for n := range plugin {
		exposed[n] = true
	}
	used := map[string][]string{}
	for _, p := range flattenPanels(d.Panels) {
		for _, tg := range p.Targets {
			for _, n := range metricNames(tg.Expr) {
				used[n] = append(used[n], p.Title)
			}
		}
	}
	for _, v := range d.Templating.List {
		if v.Type == "query" {
			for _, n := range metricNames(labelValuesArg.ReplaceAllString(v.Definition, "$1")) {
				used[n] = append(used[n], "variable "+v.Name)
			}
		}
	}
	if len(used) < 5 {
		t.Fatalf("only %d metrics used: %v", len(used), used)
	}
	names := keys(used)
	sort.Strings(names)
	for _, n := range names {
		if !exposed[n] {
			t.Errorf("%q (in %v) is exposed by neither program", n, used[n])
		}
	}
}

// labelValuesArg is the metric of Grafana's label_values(metric, label).
var labelValuesArg = regexp.MustCompile(`label_values\(\s*([^,()]+?)\s*,[^()]*\)`)

// pluginMetricNames reads the metric names the plugin's code registers:
// the first argument of prometheus.NewDesc and the Name (with Namespace
// and Subsystem) of prometheus.*Opts literals; histograms add their
// _bucket, _sum and _count series.
func pluginMetricNames(t *testing.T) map[string]bool {
	t.Helper()
	fset := token.NewFileSet()
	files, err := filepath.Glob(rootPath("plugins", "service-registry", "*.go"))
	if err != nil {
		t.Fatal(err)
	}
	out := map[string]bool{}
	str := func(e ast.Expr) string {
		if lit, ok := e.(*ast.BasicLit); ok && lit.Kind == token.STRING {
			v, _ := strconv.Unquote(lit.Value)
			return v
		}
		return ""
	}
	for _, f := range files {
		if strings.HasSuffix(f, "_test.go") {
			continue
		}
		file, err := parser.ParseFile(fset, f, nil, 0)
		if err != nil {
			t.Fatal(err)
		}
		ast.Inspect(file, func(n ast.Node) bool {
			switch x := n.(type) {
			case *ast.CallExpr:
				if sel, ok := x.Fun.(*ast.SelectorExpr); ok && sel.Sel.Name == "NewDesc" && len(x.Args) > 0 {
					if name := str(x.Args[0]); name != "" {
						out[name] = true
					}
				}
			case *ast.CompositeLit:
				sel, ok := x.Type.(*ast.SelectorExpr)
				if !ok || !strings.HasSuffix(sel.Sel.Name, "Opts") {
					return true
				}
				parts := map[string]string{}
				for _, el := range x.Elts {
					if kv, ok := el.(*ast.KeyValueExpr); ok {
						if k, ok := kv.Key.(*ast.Ident); ok {
							parts[k.Name] = str(kv.Value)
						}
					}
				}
				if parts["Name"] == "" {
					return true
				}
				var full []string
				for _, p := range []string{parts["Namespace"], parts["Subsystem"], parts["Name"]} {
					if p != "" {
						full = append(full, p)
					}
				}
				name := strings.Join(full, "_")
				out[name] = true
				if sel.Sel.Name == "HistogramOpts" || sel.Sel.Name == "SummaryOpts" {
					for _, suf := range []string{"_bucket", "_sum", "_count"} {
						out[name+suf] = true
					}
				}
			}
			return true
		})
	}
	return out
}

var (
	adminsvcOnce sync.Once
	adminsvcBin  string
	adminsvcErr  error
)

// adminsvcMetricNames starts adminsvc on real Redis, makes a few requests
// so labelled series exist, and returns the names /metrics exposes
// (histograms with their _bucket, _sum and _count series).
func adminsvcMetricNames(t *testing.T) map[string]bool {
	t.Helper()
	adminsvcOnce.Do(func() { adminsvcBin, adminsvcErr = testbin.Build(buildDir, "./adminsvc", "adminsvc") })
	if adminsvcErr != nil {
		t.Fatalf("building adminsvc: %v", adminsvcErr)
	}
	rd := redistest.Start(t, redistest.Options{})
	port := redistest.FreePort(t)
	base := "http://127.0.0.1:" + strconv.Itoa(port)
	cmd := exec.Command(adminsvcBin)
	cmd.Env = []string{"PATH=" + os.Getenv("PATH"), "SR_LISTEN=127.0.0.1:" + strconv.Itoa(port), "SR_REDIS_URL=" + rd.URL(),
		"SR_KONG_ADMIN_URL=http://127.0.0.1:" + strconv.Itoa(redistest.FreePort(t)), "SR_RATE_LIMIT=0"}
	logs := &testbin.Buffer{}
	cmd.Stdout, cmd.Stderr = logs, logs
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = cmd.Process.Signal(syscall.SIGTERM); _ = cmd.Wait() })
	get := func(path string) (string, error) {
		resp, err := http.Get(base + path)
		if err != nil {
			return "", err
		}
		defer resp.Body.Close()
		b, err := io.ReadAll(resp.Body)
		return string(b), err
	}
	deadline := time.Now().Add(15 * time.Second)
	for {
		if _, err := get("/health"); err == nil {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("adminsvc not answering:\n%s", logs.String())
		}
		time.Sleep(20 * time.Millisecond)
	}
	_, _ = get("/routes")
	text, err := get("/metrics")
	if err != nil {
		t.Fatal(err)
	}
	return exposedNames(text)
}

// exposedNames reads the families of a Prometheus text exposition.
func exposedNames(text string) map[string]bool {
	out := map[string]bool{}
	for _, line := range strings.Split(text, "\n") {
		f := strings.Fields(line)
		if len(f) == 4 && f[0] == "#" && f[1] == "TYPE" {
			out[f[2]] = true
			if f[3] == "histogram" || f[3] == "summary" {
				for _, suf := range []string{"_bucket", "_sum", "_count"} {
					out[f[2]+suf] = true
				}
			}
		}
	}
	return out
}
