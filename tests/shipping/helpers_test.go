package shipping

import (
	"bufio"
	"bytes"
	"os"
	"path/filepath"
	"regexp"
	"sort"
	"strings"
	"sync"
	"testing"

	"gopkg.in/yaml.v3"

	"github.com/kong-service-registry/service-registry/internal/testbin"
)

// root is the repository root, from this package's directory.
var root = func() string {
	abs, err := filepath.Abs(filepath.Join("..", ".."))
	if err != nil {
		panic(err) // only in tests: the working directory is always known
	}
	return abs
}()

func rootPath(parts ...string) string { return filepath.Join(append([]string{root}, parts...)...) }

func readFile(t *testing.T, parts ...string) []byte {
	t.Helper()
	b, err := os.ReadFile(rootPath(parts...))
	if err != nil {
		t.Fatalf("reading %s: %v", filepath.Join(parts...), err)
	}
	return b
}

// yamlDocs decodes every document of a YAML file into generic values.
func yamlDocs(t *testing.T, parts ...string) []map[string]any {
	t.Helper()
	dec := yaml.NewDecoder(bytes.NewReader(readFile(t, parts...)))
	var docs []map[string]any
	for {
		var d map[string]any
		err := dec.Decode(&d)
		if err != nil {
			if err.Error() == "EOF" {
				break
			}
			t.Fatalf("parsing %s: %v", filepath.Join(parts...), err)
		}
		if d != nil {
			docs = append(docs, d)
		}
	}
	return docs
}

// --- generic accessors over decoded YAML ---

func m(v any) map[string]any {
	mm, _ := v.(map[string]any)
	return mm
}

func l(v any) []any {
	ll, _ := v.([]any)
	return ll
}

func s(v any) string {
	switch x := v.(type) {
	case string:
		return x
	case nil:
		return ""
	default:
		b, _ := yaml.Marshal(x)
		return strings.TrimSpace(string(b))
	}
}

func dig(v any, keys ...string) any {
	for _, k := range keys {
		v = m(v)[k]
	}
	return v
}

// --- Dockerfile ---

type dockerStage struct {
	Name   string
	From   string
	Env    map[string]string
	Copies []string // destination paths of COPY --from=build
	User   string
	Expose []string
}

var (
	reFrom = regexp.MustCompile(`(?i)^FROM\s+(\S+)(?:\s+AS\s+(\S+))?`)
	reArg  = regexp.MustCompile(`(?i)^ARG\s+(\w+)=(\S+)`)
)

// parseDockerfile reads stages, their ENV, COPY destinations and users. It
// understands what this repository's Dockerfile uses: line continuations,
// ARG defaults in FROM, ENV k=v pairs with double quotes.
func parseDockerfile(t *testing.T) []*dockerStage {
	t.Helper()
	var lines []string
	var cur strings.Builder
	sc := bufio.NewScanner(bytes.NewReader(readFile(t, "Dockerfile")))
	for sc.Scan() {
		line := strings.TrimSpace(sc.Text())
		if strings.HasPrefix(line, "#") || (line == "" && cur.Len() == 0) {
			continue
		}
		if strings.HasSuffix(line, "\\") {
			cur.WriteString(strings.TrimSuffix(line, "\\") + " ")
			continue
		}
		cur.WriteString(line)
		lines = append(lines, cur.String())
		cur.Reset()
	}
	args := map[string]string{}
	var stages []*dockerStage
	var st *dockerStage
	for _, line := range lines {
		if mm := reArg.FindStringSubmatch(line); mm != nil && st == nil {
			args[mm[1]] = mm[2]
			continue
		}
		if mm := reFrom.FindStringSubmatch(line); mm != nil {
			from := os.Expand(mm[1], func(k string) string { return args[k] })
			st = &dockerStage{Name: mm[2], From: from, Env: map[string]string{}}
			stages = append(stages, st)
			continue
		}
		if st == nil {
			continue
		}
		word, rest, _ := strings.Cut(line, " ")
		rest = strings.TrimSpace(rest)
		switch strings.ToUpper(word) {
		case "ENV":
			for k, v := range parseEnvPairs(rest) {
				st.Env[k] = v
			}
		case "COPY":
			fields := strings.Fields(rest)
			if len(fields) >= 2 && strings.HasPrefix(fields[0], "--from=") {
				dst := fields[len(fields)-1]
				for _, src := range fields[1 : len(fields)-1] {
					if strings.HasSuffix(dst, "/") {
						st.Copies = append(st.Copies, dst+filepath.Base(src))
					} else {
						st.Copies = append(st.Copies, dst)
					}
				}
			}
		case "USER":
			st.User = rest
		case "EXPOSE":
			st.Expose = append(st.Expose, strings.Fields(rest)...)
		}
	}
	return stages
}

// parseEnvPairs splits `A=1 B="x y"` into pairs.
func parseEnvPairs(s string) map[string]string {
	out := map[string]string{}
	for len(s) > 0 {
		s = strings.TrimSpace(s)
		k, rest, ok := strings.Cut(s, "=")
		if !ok {
			break
		}
		var v string
		if strings.HasPrefix(rest, `"`) {
			end := strings.Index(rest[1:], `"`)
			if end < 0 {
				v, rest = rest[1:], ""
			} else {
				v, rest = rest[1:end+1], rest[end+2:]
			}
		} else {
			v, rest, _ = strings.Cut(rest, " ")
		}
		out[k] = v
		s = rest
	}
	return out
}

func stageByName(stages []*dockerStage, name string) *dockerStage {
	for _, st := range stages {
		if st.Name == name {
			return st
		}
	}
	return nil
}

// --- kong.conf ---

// parseKongConf reads `key = value` lines, as Kong's conf loader does
// (comments with #, values trimmed).
func parseKongConf(data []byte) map[string]string {
	out := map[string]string{}
	sc := bufio.NewScanner(bytes.NewReader(data))
	for sc.Scan() {
		line := sc.Text()
		if i := strings.Index(line, "#"); i >= 0 {
			line = line[:i]
		}
		k, v, ok := strings.Cut(line, "=")
		if !ok {
			continue
		}
		out[strings.TrimSpace(k)] = strings.TrimSpace(v)
	}
	return out
}

// --- the programs' settings, read from their code ---

var reEnvLiteral = regexp.MustCompile(`"((?:SR|ECHO)_[A-Z0-9_]+|SERVICE_CONFIG_FILE)"`)

// settingsOf returns the environment variable names a program's non-test
// Go files name as string literals; ok is false when the folder has no Go
// code yet.
func settingsOf(t *testing.T, dir string) (names map[string]bool, ok bool) {
	t.Helper()
	files, _ := filepath.Glob(rootPath(dir, "*.go"))
	names = map[string]bool{}
	for _, f := range files {
		if strings.HasSuffix(f, "_test.go") {
			continue
		}
		ok = true
		b, err := os.ReadFile(f)
		if err != nil {
			t.Fatal(err)
		}
		for _, mm := range reEnvLiteral.FindAllSubmatch(b, -1) {
			names[string(mm[1])] = true
		}
	}
	return names, ok
}

func hasGoCode(dir string) bool {
	files, _ := filepath.Glob(rootPath(dir, "*.go"))
	for _, f := range files {
		if !strings.HasSuffix(f, "_test.go") {
			return true
		}
	}
	return false
}

func keys[V any](mm map[string]V) []string {
	out := make([]string, 0, len(mm))
	for k := range mm {
		out = append(out, k)
	}
	sort.Strings(out)
	return out
}

// --- the plugin binary ---

var (
	pluginOnce sync.Once
	pluginBin  string
	pluginErr  error
	buildDir   string
)

// pluginBinary builds ./plugins/service-registry once per test run, under
// the name Kong will run it by (go-pdk derives the socket from it).
func pluginBinary(t *testing.T) string {
	t.Helper()
	// The plugin exists now: its absence is a broken tree, not a skip.
	if !hasGoCode("plugins/service-registry") {
		t.Fatal("plugins/service-registry has no Go code")
	}
	pluginOnce.Do(func() {
		pluginBin, pluginErr = testbin.Build(buildDir, "./plugins/service-registry", "service-registry", "CGO_ENABLED=0")
	})
	if pluginErr != nil {
		t.Fatalf("building the plugin: %v", pluginErr)
	}
	return pluginBin
}

func TestMain(m *testing.M) {
	// The plugin is built lazily, by the tests that need it, into dir.
	testbin.Main(m, func(dir string) error {
		buildDir = dir
		return nil
	})
}
