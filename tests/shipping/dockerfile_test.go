package shipping

import (
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
)

// TestDockerfileBuildsWhatItShips: the build stage uses go.mod's Go, builds
// packages that exist and stamp a version, every binary a stage copies is
// built, the images run as non-root where they can, and the final (default)
// stage is Kong 3.9.
func TestDockerfileBuildsWhatItShips(t *testing.T) {
	stages := parseDockerfile(t)
	if len(stages) == 0 {
		t.Fatal("Dockerfile: no stages")
	}
	gomod := string(readFile(t, "go.mod"))
	goVer := regexp.MustCompile(`(?m)^go (\S+)`).FindStringSubmatch(gomod)
	build := stageByName(stages, "build")
	if build == nil || goVer == nil || build.From != "golang:"+goVer[1] {
		t.Errorf("Dockerfile build stage FROM %v, want golang:%s (go.mod)", build, goVer)
	}
	if last := stages[len(stages)-1]; last.Name != "kong" || !officialImage.MatchString(last.From) || !strings.HasPrefix(last.From, "kong:3.9") {
		t.Errorf("Dockerfile: the default (last) stage is %s FROM %s, want kong FROM kong:3.9", last.Name, last.From)
	}

	text := strings.ReplaceAll(string(readFile(t, "Dockerfile")), "\\\n", " ")
	var buildLine string
	for _, line := range strings.Split(text, "\n") {
		if strings.HasPrefix(strings.TrimSpace(line), "RUN") && strings.Contains(line, "go build") {
			buildLine = line
		}
	}
	for _, want := range []string{"CGO_ENABLED=0", "-trimpath", "-s -w", "-X main.version=${VERSION}", "-o /out/"} {
		if !strings.Contains(buildLine, want) {
			t.Errorf("Dockerfile go build lacks %q: %s", want, buildLine)
		}
	}
	// Kong refuses a plugin VERSION that is not x.y.z: the default comes
	// from the VERSION file (an empty ARG), an override must be x.y.z.
	if m := regexp.MustCompile(`(?m)^ARG VERSION=(.*)$`).FindStringSubmatch(text); m == nil || (m[1] != "" && !regexp.MustCompile(`^\d+\.\d+\.\d+$`).MatchString(m[1])) {
		t.Errorf("Dockerfile ARG VERSION default %v: want empty (the VERSION file) or x.y.z", m)
	}
	if !strings.Contains(buildLine, "$(cat VERSION)") || !strings.Contains(buildLine, "grep -Eqx") {
		t.Errorf("Dockerfile go build neither reads the VERSION file nor checks x.y.z: %s", buildLine)
	}
	built := map[string]bool{}
	for _, f := range strings.Fields(buildLine) {
		if !strings.HasPrefix(f, "./") {
			continue
		}
		dir := strings.TrimPrefix(f, "./")
		built[filepath.Base(dir)] = true
		if !hasGoCode(dir) {
			t.Logf("Dockerfile builds %s, which has no code yet", f)
			continue
		}
		if !declaresVersion(t, dir) {
			t.Errorf("%s: package main has no `var version` for -X main.version", dir)
		}
	}
	for _, want := range []string{"service-registry", "adminsvc", "srctl"} {
		if !built[want] {
			t.Errorf("Dockerfile does not build %s", want)
		}
	}
	for _, st := range stages {
		for _, c := range st.Copies {
			if !built[filepath.Base(c)] {
				t.Errorf("Dockerfile stage %s copies %s, which the build stage does not build", st.Name, c)
			}
		}
	}
	for _, name := range []string{"adminsvc", "echo-backend"} {
		st := stageByName(stages, name)
		if st == nil {
			t.Errorf("Dockerfile: no %s target", name)
			continue
		}
		if st.User == "" || strings.HasPrefix(st.User, "0") || strings.HasPrefix(st.User, "root") {
			t.Errorf("Dockerfile %s runs as %q, want a non-root user", name, st.User)
		}
	}
	if st := stageByName(stages, "adminsvc"); st != nil && (st.Env["SR_LISTEN"] != ":81" || !contains(st.Expose, "81")) {
		t.Errorf("Dockerfile adminsvc: SR_LISTEN %q, EXPOSE %v; want :81 and 81", st.Env["SR_LISTEN"], st.Expose)
	}
	ignore := string(readFile(t, ".dockerignore"))
	for _, want := range []string{".git", "bin"} {
		if !strings.Contains(ignore, want+"\n") {
			t.Errorf(".dockerignore does not exclude %s", want)
		}
	}
}

var reVersionVar = regexp.MustCompile(`(?m)^\s*(var\s+)?version\s*(string)?\s*=`)

func declaresVersion(t *testing.T, dir string) bool {
	t.Helper()
	files, _ := filepath.Glob(rootPath(dir, "*.go"))
	for _, f := range files {
		if strings.HasSuffix(f, "_test.go") {
			continue
		}
		b, err := os.ReadFile(f)
		if err != nil {
			t.Fatal(err)
		}
		if strings.Contains(string(b), "package main") && reVersionVar.Match(b) {
			return true
		}
	}
	return false
}
