package shipping

import (
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/kong-service-registry/service-registry/internal/redistest"
	"github.com/kong-service-registry/service-registry/internal/testbin"
)

// scraped are the programs Prometheus must scrape.
var scraped = []program{progAdminsvc, progKong}

// TestComposePrometheusScrapesThePrograms: the metrics profile's Prometheus
// scrapes each program at a port that program listens on, and its Grafana
// reads that Prometheus and loads the shipped dashboard.
func TestComposePrometheusScrapesThePrograms(t *testing.T) {
	doc := yamlDocs(t, "deploy", "docker-compose.yml")[0]
	services := m(doc["services"])
	prom, graf := services["prometheus"], services["grafana"]
	if prom == nil || graf == nil {
		t.Fatal("compose: no prometheus or grafana service")
	}
	for _, svc := range []any{prom, graf} {
		if !contains(strList(dig(svc, "profiles")), "metrics") {
			t.Errorf("compose prometheus/grafana: not in the metrics profile (the default stack stays small)")
		}
	}
	cfgPath := mountedFile(t, prom, "/etc/prometheus/prometheus.yml")
	cfg := yamlDocs(t, "deploy", cfgPath)[0]
	byProgram := map[program]bool{}
	for _, job := range l(cfg["scrape_configs"]) {
		name := s(dig(job, "job_name"))
		path := s(dig(job, "metrics_path"))
		if path == "" {
			path = "/metrics"
		}
		for _, sc := range l(dig(job, "static_configs")) {
			for _, tg := range l(dig(sc, "targets")) {
				host, port, err := net.SplitHostPort(s(tg))
				if err != nil {
					t.Errorf("job %s: target %q: %v", name, s(tg), err)
					continue
				}
				svc := services[host]
				if svc == nil {
					t.Errorf("job %s: target %s is not a compose service", name, host)
					continue
				}
				prog := programFor(composeImage(svc), strList(dig(svc, "command")))
				p, _ := strconv.Atoi(port)
				if !intsContain(metricsPorts(prog, composeEnv(svc)), p) {
					t.Errorf("job %s: scrapes %s:%d, but %s serves metrics on %v", name, host, p, prog, metricsPorts(prog, composeEnv(svc)))
				}
				if path != "/metrics" {
					t.Errorf("job %s: metrics_path %s; the programs serve /metrics", name, path)
				}
				byProgram[prog] = true
			}
		}
	}
	for _, p := range scraped {
		if !byProgram[p] {
			t.Errorf("compose Prometheus does not scrape %s", p)
		}
	}
	ds := yamlDocs(t, "deploy", strings.TrimPrefix(mountedDir(t, graf, "/etc/grafana/provisioning"), "./"), "datasources", "prometheus.yml")[0]
	if url := s(dig(l(ds["datasources"])[0], "url")); url != "http://prometheus:9090" {
		t.Errorf("Grafana's datasource is %s, not the profile's Prometheus", url)
	}
	prov := yamlDocs(t, "deploy", strings.TrimPrefix(mountedDir(t, graf, "/etc/grafana/provisioning"), "./"), "dashboards", "service-registry.yml")[0]
	dir := s(dig(l(prov["providers"])[0], "options", "path"))
	src := mountedDir(t, graf, dir)
	if _, err := os.Stat(filepath.Join(root, "deploy", src, "service-registry.json")); err != nil {
		t.Errorf("Grafana loads dashboards from %s (deploy/%s), which lacks service-registry.json: %v", dir, src, err)
	}
}

// metricsPorts are the ports a program serves /metrics on.
func metricsPorts(prog program, env map[string]string) []int {
	switch prog {
	case progKong:
		// The plugin server's own listener (-metrics-listen in its start
		// command; Kong's environment does not reach it).
		if a := metricsListenOf(env["KONG_PLUGINSERVER_SERVICE_REGISTRY_START_CMD"]); a != "" {
			return []int{portOf(a)}
		}
		return nil
	case progAdminsvc:
		// The metrics-only listener when set, else /metrics on the API port
		// (behind the API key when keys are set).
		if env["SR_METRICS_LISTEN"] != "" {
			return []int{portOf(env["SR_METRICS_LISTEN"])}
		}
		return listenPorts(prog, env)
	}
	return nil
}

// mountedFile returns the deploy/-relative source of the bind mount at
// target in a compose service.
func mountedFile(t *testing.T, svc any, target string) string {
	t.Helper()
	return strings.TrimPrefix(mountedDir(t, svc, target), "./")
}

func mountedDir(t *testing.T, svc any, target string) string {
	t.Helper()
	for _, v := range l(dig(svc, "volumes")) {
		parts := strings.Split(s(v), ":")
		if len(parts) >= 2 && parts[1] == target {
			return parts[0]
		}
	}
	t.Fatalf("compose: nothing mounted at %s", target)
	return ""
}

// TestKubernetesPodsAreScraped: the workloads whose programs export metrics
// carry the prometheus.io annotations, on a container port where that
// program serves /metrics.
func TestKubernetesPodsAreScraped(t *testing.T) {
	want := map[program]bool{}
	for _, p := range scraped {
		want[p] = true
	}
	found := map[program]bool{}
	for _, f := range k8sFiles(t) {
		for _, d := range yamlDocs(t, "deploy", "k8s", filepath.Base(f)) {
			if k := s(d["kind"]); k != "Deployment" && k != "StatefulSet" {
				continue
			}
			name := s(dig(d, "metadata", "name"))
			ann := m(dig(d, "spec", "template", "metadata", "annotations"))
			for _, c := range l(dig(d, "spec", "template", "spec", "containers")) {
				prog := programFor(s(dig(c, "image")), strList(dig(c, "command")))
				if !want[prog] {
					continue
				}
				found[prog] = true
				if s(ann["prometheus.io/scrape"]) != "true" {
					t.Errorf("deploy/k8s %s: %s exports metrics but the pod has no prometheus.io/scrape: \"true\"", name, prog)
					continue
				}
				env := map[string]string{}
				for _, e := range l(dig(c, "env")) {
					env[s(dig(e, "name"))] = s(dig(e, "value"))
				}
				port, _ := strconv.Atoi(s(ann["prometheus.io/port"]))
				if !intsContain(metricsPorts(prog, env), port) {
					t.Errorf("deploy/k8s %s: prometheus.io/port %q, but %s serves metrics on %v", name, s(ann["prometheus.io/port"]), prog, metricsPorts(prog, env))
				}
				var cports []int
				for _, p := range l(dig(c, "ports")) {
					n, _ := strconv.Atoi(s(dig(p, "containerPort")))
					cports = append(cports, n)
				}
				if !intsContain(cports, port) {
					t.Errorf("deploy/k8s %s: prometheus.io/port %d is not a container port %v", name, port, cports)
				}
				if p := s(ann["prometheus.io/path"]); p != "" && p != "/metrics" {
					t.Errorf("deploy/k8s %s: prometheus.io/path %s", name, p)
				}
			}
		}
	}
	for p := range want {
		if !found[p] {
			t.Errorf("deploy/k8s: no workload runs %s", p)
		}
	}
}

// TestDeployedPluginStartCommandServesMetrics starts the plugin with the
// start command compose and Kubernetes give Kong (prefix and address moved
// to this machine) and scrapes it where Prometheus would.
func TestDeployedPluginStartCommandServesMetrics(t *testing.T) {
	bin := pluginBinary(t)
	var cmds []string
	for _, ks := range allKongSettings(t) {
		if c := ks.conf["pluginserver_service_registry_start_cmd"]; metricsListenOf(c) != "" {
			cmds = append(cmds, c)
		}
	}
	if len(cmds) < 2 {
		t.Fatalf("only %d deployments start the plugin with -metrics-listen (want compose and Kubernetes)", len(cmds))
	}
	for _, c := range cmds {
		prefix, err := os.MkdirTemp("", "kp") // short: unix socket paths are limited
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { os.RemoveAll(prefix) })
		addr := "127.0.0.1:" + strconv.Itoa(redistest.FreePort(t))
		args := strings.Fields(c)[1:]
		for i := range args {
			switch {
			case args[i] == kongPrefix:
				args[i] = prefix
			case i > 0 && strings.TrimLeft(args[i-1], "-") == "metrics-listen":
				args[i] = addr
			}
		}
		cmd := exec.Command(bin, args...)
		out := &testbin.Buffer{}
		cmd.Stdout, cmd.Stderr = out, out
		if err := cmd.Start(); err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { _ = cmd.Process.Kill(); _ = cmd.Wait() })
		var body string
		ok := testbin.Poll(15*time.Second, func() bool {
			resp, err := http.Get("http://" + addr + "/metrics")
			if err != nil {
				return false
			}
			defer resp.Body.Close()
			b, _ := io.ReadAll(resp.Body)
			body = string(b)
			return resp.StatusCode == 200
		})
		if !ok || !strings.Contains(body, "service_registry_plugin_info") {
			t.Fatalf("%q: no plugin metrics at %s\n%s\nplugin output:\n%s", c, addr, body, out.String())
		}
	}
}
