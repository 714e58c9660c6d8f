package shipping

import (
	"bufio"
	"bytes"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"testing"
)

// imageRepo is the name this repository's Dockerfile targets are tagged
// with: kong-service-registry/<target>:<tag>.
const imageRepo = "kong-service-registry/"

// officialImage: Docker official images the deployment may use.
var officialImage = regexp.MustCompile(`^(kong:3\.9(\.\d+)?|redis:7(\.\d+)*(-alpine)?|postgres:1[3-7](\.\d+)?(-alpine)?|` +
	// The metrics profile: the projects' own images, pinned.
	`prom/prometheus:v[23]\.\d+\.\d+|grafana/grafana:1[0-2]\.\d+\.\d+)$`)

// program is what runs in a container, so that its environment and ports
// can be checked against what that program reads.
type program string

const (
	progKong     program = "kong"
	progAdminsvc program = "adminsvc"
	progSrctl    program = "srctl"
	progEcho     program = "echo-backend"
	progRedis    program = "redis"
	progPostgres program = "postgres"
	progProm     program = "prometheus"
	progGrafana  program = "grafana"
)

// programFor names the program an image runs, given the command that
// overrides its entrypoint (if any).
func programFor(image string, command []string) program {
	if len(command) > 0 && strings.HasSuffix(command[0], "/srctl") {
		return progSrctl
	}
	switch {
	case strings.HasPrefix(image, imageRepo+"kong:"), strings.HasPrefix(image, "kong:"):
		return progKong
	case strings.HasPrefix(image, imageRepo+"adminsvc:"):
		return progAdminsvc
	case strings.HasPrefix(image, imageRepo+"echo-backend:"):
		return progEcho
	case strings.HasPrefix(image, "redis:"):
		return progRedis
	case strings.HasPrefix(image, "postgres:"):
		return progPostgres
	case strings.HasPrefix(image, "prom/prometheus:"):
		return progProm
	case strings.HasPrefix(image, "grafana/grafana:"):
		return progGrafana
	}
	return ""
}

func kongConfKeys(t *testing.T) map[string]bool {
	t.Helper()
	out := map[string]bool{}
	sc := bufio.NewScanner(bytes.NewReader(readFile(t, "tests", "shipping", "testdata", "kong-3.9-conf-keys.txt")))
	for sc.Scan() {
		if line := strings.TrimSpace(sc.Text()); line != "" && !strings.HasPrefix(line, "#") {
			out[line] = true
		}
	}
	return out
}

var rePluginserverKey = regexp.MustCompile(`^pluginserver_[a-z0-9_]+_(start_cmd|query_cmd|socket)$`)

// checkEnv reports environment variables the program does not read.
// allowed are extra names (Kubernetes $(VAR) substitutions).
func checkEnv(t *testing.T, where string, prog program, env map[string]string, allowed map[string]bool) {
	t.Helper()
	var known map[string]bool
	switch prog {
	case progKong:
		keys := kongConfKeys(t)
		for k := range env {
			if allowed[k] {
				continue
			}
			name := strings.ToLower(strings.TrimPrefix(k, "KONG_"))
			if !strings.HasPrefix(k, "KONG_") || !(keys[name] || rePluginserverKey.MatchString(name)) {
				t.Errorf("%s: Kong 3.9 has no setting for %s", where, k)
			}
		}
		return
	case progAdminsvc:
		var ok bool
		known, ok = adminsvcSettings(t)
		if !ok {
			t.Logf("%s: adminsvc has no code yet; its environment is not checked", where)
			return
		}
	case progSrctl:
		known, _ = settingsOf(t, "adminsvc/srctl")
	case progEcho:
		known, _ = settingsOf(t, "deploy/echo-backend")
	case progRedis, progProm:
		known = map[string]bool{}
	case progGrafana:
		// Grafana reads every GF_<SECTION>_<KEY> as an ini override.
		known = map[string]bool{}
		for k := range env {
			if regexp.MustCompile(`^GF_[A-Z0-9]+_[A-Z0-9_]+$`).MatchString(k) {
				known[k] = true
			}
		}
	case progPostgres:
		// Documented by the official image.
		known = map[string]bool{"POSTGRES_USER": true, "POSTGRES_PASSWORD": true, "POSTGRES_DB": true, "PGDATA": true}
	default:
		t.Errorf("%s: unknown program", where)
		return
	}
	for k := range env {
		if !known[k] && !allowed[k] {
			t.Errorf("%s: %s is not a setting %s reads (it reads %v)", where, k, prog, keys(known))
		}
	}
}

// adminsvcSettings greps the SR_* names adminsvc's code reads (its own
// packages, not the client or the CLI).
func adminsvcSettings(t *testing.T) (map[string]bool, bool) {
	t.Helper()
	out := map[string]bool{}
	found := false
	err := filepath.WalkDir(rootPath("adminsvc"), func(p string, d os.DirEntry, err error) error {
		if err != nil {
			return err
		}
		rel, _ := filepath.Rel(root, p)
		if d.IsDir() {
			if rel == filepath.Join("adminsvc", "client") || rel == filepath.Join("adminsvc", "srctl") {
				return filepath.SkipDir
			}
			names, ok := settingsOf(t, rel)
			if ok {
				found = true
				for n := range names {
					out[n] = true
				}
			}
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	return out, found
}

// listenPorts are the ports a program listens on given its environment.
func listenPorts(prog program, env map[string]string) []int {
	switch prog {
	case progKong:
		var ports []int
		if a := metricsListenOf(env["KONG_PLUGINSERVER_SERVICE_REGISTRY_START_CMD"]); a != "" {
			ports = append(ports, portOf(a)) // the plugin server's metrics
		}
		listens := map[string]string{"KONG_PROXY_LISTEN": "0.0.0.0:8000", "KONG_ADMIN_LISTEN": "127.0.0.1:8001", "KONG_STATUS_LISTEN": ""}
		for k, def := range listens {
			v := env[k]
			if v == "" {
				v = def
			}
			for _, l := range strings.Split(v, ",") {
				if f := strings.Fields(l); len(f) > 0 {
					ports = append(ports, portOf(f[0]))
				}
			}
		}
		return ports
	case progAdminsvc:
		ports := []int{portOf(orDefault(env["SR_LISTEN"], ":81"))}
		if env["SR_METRICS_LISTEN"] != "" {
			ports = append(ports, portOf(env["SR_METRICS_LISTEN"]))
		}
		return ports
	case progEcho:
		return []int{portOf(orDefault(env["ECHO_LISTEN"], ":8080"))}
	case progRedis:
		return []int{6379}
	case progPostgres:
		return []int{5432}
	case progProm:
		return []int{9090}
	case progGrafana:
		return []int{3000}
	}
	return nil
}

func portOf(addr string) int {
	_, p, err := net.SplitHostPort(addr)
	if err != nil {
		return -1
	}
	n, _ := strconv.Atoi(p)
	return n
}

func orDefault(v, def string) string {
	if v == "" {
		return def
	}
	return v
}

func intsContain(list []int, v int) bool {
	for _, x := range list {
		if x == v {
			return true
		}
	}
	return false
}

// --- compose ---

func composeEnv(svc any) map[string]string {
	out := map[string]string{}
	switch e := dig(svc, "environment").(type) {
	case map[string]any:
		for k, v := range e {
			out[k] = s(v)
		}
	case []any:
		for _, kv := range e {
			k, v, _ := strings.Cut(s(kv), "=")
			out[k] = v
		}
	}
	return out
}

func composeImage(svc any) string { return s(dig(svc, "image")) }

func strList(v any) []string {
	switch x := v.(type) {
	case string:
		return strings.Fields(x)
	case []any:
		var out []string
		for _, e := range x {
			out = append(out, s(e))
		}
		return out
	}
	return nil
}

// TestComposeFile: the compose file parses, builds only this repository's
// Dockerfile targets or uses official images, mounts files that exist, and
// sets only settings and ports its programs use.
func TestComposeFile(t *testing.T) {
	doc := yamlDocs(t, "deploy", "docker-compose.yml")[0]
	stages := parseDockerfile(t)
	services := m(doc["services"])
	for _, want := range []string{"kong", "redis", "adminsvc", "echo-backend", "postgres", "kong-migrations", "kong-db"} {
		if services[want] == nil {
			t.Errorf("compose: no service %s", want)
		}
	}
	built := map[string]bool{}
	for name, svc := range services {
		if b := dig(svc, "build"); b != nil {
			target := s(dig(b, "target"))
			ctx := filepath.Clean(filepath.Join(root, "deploy", s(dig(b, "context"))))
			if ctx != root {
				t.Errorf("compose %s: build context %s is not the repository root", name, s(dig(b, "context")))
			}
			if stageByName(stages, target) == nil {
				t.Errorf("compose %s: build target %q is not a Dockerfile stage", name, target)
			}
			if img := composeImage(svc); !strings.HasPrefix(img, imageRepo+target+":") {
				t.Errorf("compose %s: builds %s but tags it %q", name, target, img)
			}
			built[composeImage(svc)] = true
		}
	}
	for name, svc := range services {
		where := "compose " + name
		img := composeImage(svc)
		if !built[img] && !officialImage.MatchString(img) {
			t.Errorf("%s: image %q is neither official nor built from the Dockerfile", where, img)
		}
		if strings.HasPrefix(img, imageRepo) && !built[img] {
			t.Errorf("%s: image %q is not built by any service of this file", where, img)
		}
		cmd := strList(dig(svc, "command"))
		prog := programFor(img, cmd)
		env := composeEnv(svc)
		checkEnv(t, where, prog, env, nil)
		if prog == progKong && env["KONG_PREFIX"] != "" {
			t.Errorf("%s: KONG_PREFIX set; the plugin's socket would no longer match", where)
		}
		listen := listenPorts(prog, env)
		for _, p := range l(dig(svc, "ports")) {
			parts := strings.Split(s(p), ":")
			cport, _ := strconv.Atoi(parts[len(parts)-1])
			if !intsContain(listen, cport) {
				t.Errorf("%s: publishes container port %d; %s listens on %v", where, cport, prog, listen)
			}
		}
		for _, v := range l(dig(svc, "volumes")) {
			src, _, _ := strings.Cut(s(v), ":")
			if strings.HasPrefix(src, ".") || strings.HasPrefix(src, "/") {
				if _, err := os.Stat(filepath.Join(root, "deploy", src)); err != nil {
					t.Errorf("%s: mounts %s, which does not exist: %v", where, src, err)
				}
			} else if m(doc["volumes"])[src] == nil && !(m(doc["volumes"]) != nil && hasKey(m(doc["volumes"]), src)) {
				t.Errorf("%s: named volume %s is not declared", where, src)
			}
		}
		for dep, cond := range m(dig(svc, "depends_on")) {
			if services[dep] == nil {
				t.Errorf("%s: depends on unknown service %s", where, dep)
			}
			switch c := s(dig(cond, "condition")); c {
			case "service_healthy":
				if dig(services[dep], "healthcheck") == nil {
					t.Errorf("%s: waits for %s to be healthy but it has no healthcheck", where, dep)
				}
			case "service_started", "service_completed_successfully":
			default:
				t.Errorf("%s: depends_on %s condition %q", where, dep, c)
			}
		}
		if hc := strList(dig(svc, "healthcheck", "test")); len(hc) > 1 {
			checkImageHasCommand(t, where, stages, img, prog, hc[1])
		}
		if strings.Contains(s(dig(svc, "profiles")), "db") {
			continue
		}
		if dig(svc, "healthcheck") == nil {
			t.Errorf("%s: no healthcheck", where)
		}
	}
	if !strings.Contains(strings.Join(strList(dig(services["redis"], "command")), " "), "--appendonly yes") {
		t.Error("compose redis: AOF is not on (--appendonly yes)")
	}
}

func hasKey(mm map[string]any, k string) bool {
	_, ok := mm[k]
	return ok
}

// checkImageHasCommand: a health check or hook runs a binary the image has.
func checkImageHasCommand(t *testing.T, where string, stages []*dockerStage, image string, prog program, exe string) {
	t.Helper()
	if !strings.HasPrefix(exe, "/") {
		// Tools of the base images: kong's CLI, redis-cli, pg_isready.
		ok := map[program][]string{progKong: {"kong"}, progRedis: {"redis-cli"}, progPostgres: {"pg_isready"},
			progProm: {"wget"}, progGrafana: {"wget"}}
		if !contains(ok[prog], exe) {
			t.Errorf("%s: runs %q, which %s's image is not known to have", where, exe, prog)
		}
		return
	}
	target := strings.TrimPrefix(strings.SplitN(image, ":", 2)[0], imageRepo)
	st := stageByName(stages, target)
	if st == nil || !contains(st.Copies, exe) {
		t.Errorf("%s: runs %s, which the Dockerfile does not put into %s", where, exe, image)
	}
}

// --- Kubernetes ---

type k8sContainer struct {
	file, name, image string
	workload          string
	command           []string
	env               map[string]string
	substitutions     map[string]bool
	ports             []int
	probePorts        []int
	secretRefs        []string // secret/key
	init              bool
	// hookSrctl: a lifecycle hook runs srctl in this container, so srctl's
	// settings belong in its environment too.
	hookSrctl bool
}

func k8sFiles(t *testing.T) []string {
	t.Helper()
	files, _ := filepath.Glob(rootPath("deploy", "k8s", "*.yaml"))
	if len(files) == 0 {
		t.Fatal("deploy/k8s has no manifests")
	}
	return files
}

var reSubst = regexp.MustCompile(`\$\(([A-Z_][A-Z0-9_]*)\)`)

func k8sContainers(t *testing.T) []k8sContainer {
	t.Helper()
	var out []k8sContainer
	for _, f := range k8sFiles(t) {
		base := filepath.Base(f)
		for _, d := range yamlDocs(t, "deploy", "k8s", base) {
			spec := dig(d, "spec", "template", "spec")
			if spec == nil {
				continue
			}
			for _, group := range []string{"initContainers", "containers"} {
				for _, c := range l(dig(spec, group)) {
					kc := k8sContainer{file: base, name: s(dig(c, "name")), image: s(dig(c, "image")),
						workload: s(dig(d, "metadata", "name")), env: map[string]string{},
						substitutions: map[string]bool{}, init: group == "initContainers"}
					kc.command = append(strList(dig(c, "command")), strList(dig(c, "args"))...)
					for _, e := range l(dig(c, "env")) {
						kc.env[s(dig(e, "name"))] = s(dig(e, "value"))
						if ref := dig(e, "valueFrom", "secretKeyRef"); ref != nil {
							kc.secretRefs = append(kc.secretRefs, s(dig(ref, "name"))+"/"+s(dig(ref, "key")))
						}
					}
					hook := strList(dig(c, "lifecycle", "preStop", "exec", "command"))
					kc.hookSrctl = len(hook) > 0 && strings.HasSuffix(hook[0], "/srctl")
					for _, arg := range append(kc.command, hook...) {
						for _, mm := range reSubst.FindAllStringSubmatch(arg, -1) {
							kc.substitutions[mm[1]] = true
						}
					}
					for _, p := range l(dig(c, "ports")) {
						n, _ := strconv.Atoi(s(dig(p, "containerPort")))
						kc.ports = append(kc.ports, n)
					}
					for _, probe := range []string{"readinessProbe", "livenessProbe", "startupProbe"} {
						for _, kind := range []string{"httpGet", "tcpSocket"} {
							if p := dig(c, probe, kind, "port"); p != nil {
								n, _ := strconv.Atoi(s(p))
								kc.probePorts = append(kc.probePorts, n)
							}
						}
					}
					out = append(out, kc)
				}
			}
		}
	}
	return out
}

// TestKubernetesManifests: every manifest parses, every image is official
// or a Dockerfile target, every env and port is one the program uses, every
// reference (secret, ConfigMap, Service selector, kustomize resource)
// resolves, and Kong's ConfigMap carries the root kong.yml verbatim.
func TestKubernetesManifests(t *testing.T) {
	stages := parseDockerfile(t)
	kinds := map[string]map[string]any{} // kind/name → doc
	for _, f := range k8sFiles(t) {
		for _, d := range yamlDocs(t, "deploy", "k8s", filepath.Base(f)) {
			if s(d["kind"]) == "Kustomization" {
				for _, r := range l(d["resources"]) {
					if _, err := os.Stat(rootPath("deploy", "k8s", s(r))); err != nil {
						t.Errorf("kustomization: resource %s: %v", s(r), err)
					}
				}
				continue
			}
			if s(d["apiVersion"]) == "" || s(d["kind"]) == "" || s(dig(d, "metadata", "name")) == "" {
				t.Errorf("%s: a document without apiVersion, kind or metadata.name", filepath.Base(f))
			}
			kinds[s(d["kind"])+"/"+s(dig(d, "metadata", "name"))] = d
		}
	}
	for _, want := range []string{"Deployment/kong", "ConfigMap/kong-declarative", "StatefulSet/redis", "Deployment/adminsvc",
		"Service/adminsvc", "Secret/adminsvc-api-keys", "Service/redis", "Deployment/echo-backend"} {
		if kinds[want] == nil {
			t.Errorf("deploy/k8s: no %s", want)
		}
	}
	if got := s(dig(kinds["ConfigMap/kong-declarative"], "data", "kong.yml")); got != string(readFile(t, "kong.yml")) {
		t.Error("deploy/k8s ConfigMap kong-declarative: kong.yml differs from the root kong.yml; copy it again")
	}
	if !strings.Contains(strings.Join(k8sContainerArgs(kinds["StatefulSet/redis"]), " "), "--appendonly yes") {
		t.Error("deploy/k8s redis: AOF is not on (--appendonly yes)")
	}

	podPorts := map[string][]int{} // workload → container ports
	for _, c := range k8sContainers(t) {
		where := "deploy/k8s/" + c.file + " " + c.name
		if !officialImage.MatchString(c.image) {
			target := strings.TrimPrefix(strings.SplitN(c.image, ":", 2)[0], imageRepo)
			if !strings.HasPrefix(c.image, imageRepo) || stageByName(stages, target) == nil {
				t.Errorf("%s: image %q is neither official nor a Dockerfile target", where, c.image)
			}
		}
		prog := programFor(c.image, c.command)
		allowed := c.substitutions
		if c.hookSrctl {
			srctlEnv, _ := settingsOf(t, "adminsvc/srctl")
			for k := range srctlEnv {
				allowed[k] = true
			}
			hook := "/usr/local/bin/srctl"
			checkImageHasCommand(t, where+" preStop", stages, c.image, prog, hook)
		}
		checkEnv(t, where, prog, c.env, allowed)
		if len(c.command) > 0 && strings.HasPrefix(c.command[0], "/") {
			checkImageHasCommand(t, where, stages, c.image, prog, c.command[0])
		}
		listen := listenPorts(prog, c.env)
		for _, p := range append(append([]int{}, c.ports...), c.probePorts...) {
			if !intsContain(listen, p) {
				t.Errorf("%s: port %d, but %s listens on %v", where, p, prog, listen)
			}
		}
		for _, ref := range c.secretRefs {
			name, key, _ := strings.Cut(ref, "/")
			sec := kinds["Secret/"+name]
			if sec == nil || (dig(sec, "stringData", key) == nil && dig(sec, "data", key) == nil) {
				t.Errorf("%s: secret %s has no key %s", where, name, key)
			}
		}
		if !c.init {
			podPorts[c.workload] = append(podPorts[c.workload], c.ports...)
		}
	}
	for id, d := range kinds {
		if !strings.HasPrefix(id, "Service/") {
			continue
		}
		sel := m(dig(d, "spec", "selector"))
		var matched []string
		for wid, w := range kinds {
			if !strings.HasPrefix(wid, "Deployment/") && !strings.HasPrefix(wid, "StatefulSet/") {
				continue
			}
			labels := m(dig(w, "spec", "template", "metadata", "labels"))
			ok := len(sel) > 0
			for k, v := range sel {
				if s(labels[k]) != s(v) {
					ok = false
				}
			}
			if ok {
				matched = append(matched, s(dig(w, "metadata", "name")))
			}
		}
		if len(matched) != 1 {
			t.Errorf("%s selects %v, want exactly one workload", id, matched)
			continue
		}
		for _, p := range l(dig(d, "spec", "ports")) {
			tp, _ := strconv.Atoi(s(dig(p, "targetPort")))
			if !intsContain(podPorts[matched[0]], tp) {
				t.Errorf("%s: targetPort %d is not a container port of %s %v", id, tp, matched[0], podPorts[matched[0]])
			}
		}
		for _, v := range l(dig(kinds["Deployment/"+matched[0]], "spec", "template", "spec", "volumes")) {
			if cm := s(dig(v, "configMap", "name")); cm != "" && kinds["ConfigMap/"+cm] == nil {
				t.Errorf("%s: volume from unknown ConfigMap %s", matched[0], cm)
			}
		}
	}
}

func k8sContainerArgs(d map[string]any) []string {
	var out []string
	for _, c := range l(dig(d, "spec", "template", "spec", "containers")) {
		out = append(out, strList(dig(c, "command"))...)
		out = append(out, strList(dig(c, "args"))...)
	}
	return out
}

// --- systemd ---

// TestSystemdUnits: the units run binaries this repository builds, set only
// settings those read, and pass systemd's own verification when
// systemd-analyze is there.
func TestSystemdUnits(t *testing.T) {
	env := parseEnvFile(readFile(t, "deploy", "systemd", "adminsvc.env"))
	if known, ok := adminsvcSettings(t); ok {
		for k := range env {
			if !known[k] {
				t.Errorf("deploy/systemd/adminsvc.env: %s is not an adminsvc setting (it reads %v)", k, keys(known))
			}
		}
	}
	unit := string(readFile(t, "deploy", "systemd", "adminsvc.service"))
	for _, want := range []string{"DynamicUser=yes", "NoNewPrivileges=yes", "ProtectSystem=strict", "EnvironmentFile=/etc/service-registry/adminsvc.env", "ExecStart=/usr/local/bin/adminsvc"} {
		if !strings.Contains(unit, want+"\n") {
			t.Errorf("adminsvc.service lacks %s", want)
		}
	}
	example := string(readFile(t, "deploy", "systemd", "example-api.service"))
	srctlEnv, _ := settingsOf(t, "adminsvc/srctl")
	echoEnv, _ := settingsOf(t, "deploy/echo-backend")
	for _, line := range strings.Split(example, "\n") {
		if v, ok := strings.CutPrefix(line, "Environment="); ok {
			k, _, _ := strings.Cut(v, "=")
			if !srctlEnv[k] && !echoEnv[k] {
				t.Errorf("example-api.service: %s is read by neither srctl nor echo-backend", k)
			}
		}
	}
	for _, want := range []string{"ExecStartPost=/usr/local/bin/srctl register", "ExecStopPost=-/usr/local/bin/srctl deregister"} {
		if !strings.Contains(example, want) {
			t.Errorf("example-api.service lacks %q", want)
		}
	}
	if _, err := exec.LookPath("systemd-analyze"); err != nil {
		t.Log("systemd-analyze not installed: unit syntax not verified")
		return
	}
	cmd := exec.Command("systemd-analyze", "verify", "--man=no", "adminsvc.service", "example-api.service")
	cmd.Dir = rootPath("deploy", "systemd")
	out, _ := cmd.CombinedOutput()
	for _, line := range strings.Split(strings.TrimSpace(string(out)), "\n") {
		// The binaries are not installed on a test machine; everything else
		// systemd says is a finding.
		if line == "" || strings.Contains(line, "is not executable: No such file or directory") {
			continue
		}
		t.Errorf("systemd-analyze verify: %s", line)
	}
}

func parseEnvFile(b []byte) map[string]string {
	out := map[string]string{}
	for _, line := range strings.Split(string(b), "\n") {
		line = strings.TrimSpace(line)
		if line == "" || strings.HasPrefix(line, "#") {
			continue
		}
		k, v, _ := strings.Cut(line, "=")
		out[k] = v
	}
	return out
}
