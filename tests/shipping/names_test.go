package shipping

import (
	"encoding/json"
	"net"
	"os"
	"os/exec"
	"path"
	"strings"
	"testing"
	"time"

	"github.com/kong-service-registry/service-registry/internal/testbin"
)

const (
	pluginName     = "service-registry"
	kongPrefix     = "/usr/local/kong" // the kong image's prefix and go-pdk's default
	wantStartCmd   = "/usr/local/bin/service-registry"
	pluginSettings = "plugins pluginserver_names pluginserver_service_registry_start_cmd pluginserver_service_registry_query_cmd pluginserver_service_registry_socket prefix"
)

// kongSettings is one place that configures Kong: kong.conf keys, or KONG_*
// variables with the prefix removed and lowercased.
type kongSettings struct {
	where string
	conf  map[string]string
}

func fromEnv(where string, env map[string]string) kongSettings {
	conf := map[string]string{}
	for k, v := range env {
		if strings.HasPrefix(k, "KONG_") {
			conf[strings.ToLower(strings.TrimPrefix(k, "KONG_"))] = v
		}
	}
	return kongSettings{where: where, conf: conf}
}

// allKongSettings gathers every place the repository configures Kong.
func allKongSettings(t *testing.T) []kongSettings {
	t.Helper()
	var out []kongSettings
	if b, err := os.ReadFile(rootPath("kong", "kong.conf")); err == nil {
		out = append(out, kongSettings{where: "kong/kong.conf", conf: parseKongConf(b)})
	} else if hasGoCode("plugins/service-registry") {
		t.Errorf("kong/kong.conf is missing: %v", err)
	} else {
		t.Log("kong/kong.conf not written yet; checking the others")
	}
	kong := stageByName(parseDockerfile(t), "kong")
	if kong == nil {
		t.Fatal("Dockerfile: no stage named kong")
	}
	out = append(out, fromEnv("Dockerfile (kong stage)", kong.Env))
	for name, svc := range m(yamlDocs(t, "deploy", "docker-compose.yml")[0]["services"]) {
		env := composeEnv(svc)
		if _, ok := env["KONG_PLUGINS"]; ok || strings.Contains(composeImage(svc), "/kong:") {
			out = append(out, fromEnv("deploy/docker-compose.yml service "+name, env))
		}
	}
	for _, c := range k8sContainers(t) {
		if c.env["KONG_PLUGINS"] != "" || strings.Contains(c.image, "/kong:") {
			out = append(out, fromEnv("deploy/k8s/"+c.file+" "+c.name, c.env))
		}
	}
	return out
}

// effective applies the image's environment under a place's own settings
// (compose and Kubernetes run the image, so its ENV is there unless
// overridden).
func effective(image kongSettings, ks kongSettings) map[string]string {
	out := map[string]string{}
	if ks.where != "kong/kong.conf" {
		for k, v := range image.conf {
			out[k] = v
		}
	}
	for k, v := range ks.conf {
		out[k] = v
	}
	return out
}

// TestPluginNamedTheSameEverywhere: kong.conf, the Dockerfile, compose and
// Kubernetes load the plugin under one name, one start command, one query
// command and one socket, and those agree with how go-pdk names things.
func TestPluginNamedTheSameEverywhere(t *testing.T) {
	all := allKongSettings(t)
	var image kongSettings
	for _, ks := range all {
		if strings.HasPrefix(ks.where, "Dockerfile") {
			image = ks
		}
	}
	if len(all) < 3 {
		t.Fatalf("found Kong settings in only %d places", len(all))
	}
	canonical := ""
	for _, ks := range all {
		conf := effective(image, ks)
		where := ks.where
		plugins := splitList(conf["plugins"])
		if !contains(plugins, "bundled") || !contains(plugins, pluginName) {
			t.Errorf("%s: plugins = %q, want bundled and %s", where, conf["plugins"], pluginName)
		}
		if names := splitList(conf["pluginserver_names"]); !contains(names, pluginName) {
			t.Errorf("%s: pluginserver_names = %q, want %s", where, conf["pluginserver_names"], pluginName)
		}
		start := conf["pluginserver_service_registry_start_cmd"]
		startFields := strings.Fields(start + " ")
		startExe := ""
		if len(startFields) > 0 {
			startExe = startFields[0]
		}
		if startExe != wantStartCmd {
			t.Errorf("%s: start_cmd = %q, want the executable %s", where, start, wantStartCmd)
		}
		// Where Prometheus scrapes the plugin, the deployment adds its
		// metrics listener; the rest of the command is spelled one way.
		spelled := withoutMetricsListen(start)
		if spelled != canonical && canonical != "" {
			t.Errorf("%s: start_cmd = %q, elsewhere %q: use one spelling", where, spelled, canonical)
		}
		if canonical == "" {
			canonical = spelled
		}
		if path.Base(startExe) != pluginName {
			// go-pdk names the plugin and its socket after the executable.
			t.Errorf("%s: the executable %q is not named %s; go-pdk would open %s.socket", where, startExe, pluginName, path.Base(startExe))
		}
		if q := conf["pluginserver_service_registry_query_cmd"]; q != startExe+" -dump" {
			t.Errorf("%s: query_cmd = %q, want %q", where, q, startExe+" -dump")
		}
		// Kong connects to its socket setting, else <prefix>/<name>.socket
		// (conf_loader); the plugin listens on <-kong-prefix>/<exe>.socket,
		// -kong-prefix defaulting to /usr/local/kong (go-pdk). Kong 3.9 does
		// not pass -kong-prefix itself.
		prefix := orDefault(conf["prefix"], kongPrefix)
		kongSock := orDefault(conf["pluginserver_service_registry_socket"], prefix+"/"+pluginName+".socket")
		pluginPrefix := kongPrefix
		for i, f := range startFields {
			if (f == "-kong-prefix" || f == "--kong-prefix") && i+1 < len(startFields) {
				pluginPrefix = startFields[i+1]
			}
		}
		if pluginSock := pluginPrefix + "/" + path.Base(startExe) + ".socket"; kongSock != pluginSock {
			t.Errorf("%s: Kong connects to %s but the plugin listens on %s", where, kongSock, pluginSock)
		}
	}
	kong := stageByName(parseDockerfile(t), "kong")
	if !contains(kong.Copies, wantStartCmd) {
		t.Errorf("Dockerfile kong stage copies %v, not %s", kong.Copies, wantStartCmd)
	}
}

// TestDumpAgreesWithKongSettings runs the built plugin's query command the
// way Kong does and checks the name and the socket it reports.
func TestDumpAgreesWithKongSettings(t *testing.T) {
	bin := pluginBinary(t)
	out, err := exec.Command(bin, "-dump").Output()
	if err != nil {
		t.Fatalf("%s -dump: %v", pluginName, err)
	}
	var dump struct {
		Protocol   string
		SocketPath string
		Plugins    []struct{ Name string }
	}
	if err := json.Unmarshal(out, &dump); err != nil {
		t.Fatalf("-dump is not JSON: %v\n%s", err, out)
	}
	if dump.Protocol != "ProtoBuf:1" {
		t.Errorf("-dump Protocol = %q, want ProtoBuf:1", dump.Protocol)
	}
	if len(dump.Plugins) == 0 || dump.Plugins[0].Name != pluginName {
		t.Fatalf("-dump Plugins[0].Name = %+v, want %s (Kong uses Plugins[0])", dump.Plugins, pluginName)
	}
	// Kong's socket for this plugin server is <prefix>/<name>.socket.
	if want := kongPrefix + "/" + pluginName + ".socket"; dump.SocketPath != want {
		t.Errorf("-dump SocketPath = %q; Kong connects to %q", dump.SocketPath, want)
	}
}

func splitList(s string) []string {
	var out []string
	for _, p := range strings.Split(s, ",") {
		if p = strings.TrimSpace(p); p != "" {
			out = append(out, p)
		}
	}
	return out
}

func contains(list []string, v string) bool {
	for _, x := range list {
		if x == v {
			return true
		}
	}
	return false
}

// TestStartCommandListensWhereKongConnects starts the plugin with
// kong.conf's start command (the prefix moved to a temporary directory) and
// connects to the socket Kong would use, computed from kong.conf the way
// Kong's conf loader does.
func TestStartCommandListensWhereKongConnects(t *testing.T) {
	bin := pluginBinary(t)
	b, err := os.ReadFile(rootPath("kong", "kong.conf"))
	if err != nil {
		t.Fatal(err)
	}
	conf := parseKongConf(b)
	prefix, err := os.MkdirTemp("", "kp") // short: unix socket paths are limited
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(prefix) })
	args := strings.Fields(conf["pluginserver_service_registry_start_cmd"])
	if len(args) == 0 || args[0] != wantStartCmd {
		t.Fatalf("start_cmd %q", conf["pluginserver_service_registry_start_cmd"])
	}
	for i := range args {
		if args[i] == kongPrefix {
			args[i] = prefix
		}
	}
	if !contains(args, prefix) {
		args = append(args, "-kong-prefix", prefix)
	}
	sock := strings.Replace(orDefault(conf["pluginserver_service_registry_socket"], kongPrefix+"/"+pluginName+".socket"), kongPrefix, prefix, 1)

	cmd := exec.Command(bin, args[1:]...)
	out := &testbin.Buffer{}
	cmd.Stdout, cmd.Stderr = out, out
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = cmd.Process.Kill(); _ = cmd.Wait() })
	deadline := time.Now().Add(15 * time.Second)
	for {
		conn, err := net.Dial("unix", sock)
		if err == nil {
			conn.Close()
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("nothing listens on %s (Kong's socket) 15s after starting %v: %v\nplugin output:\n%s", sock, args, err, out.String())
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// withoutMetricsListen drops "-metrics-listen ADDR" from a start command.
func withoutMetricsListen(cmd string) string {
	f := strings.Fields(cmd)
	var out []string
	for i := 0; i < len(f); i++ {
		if f[i] == "-metrics-listen" || f[i] == "--metrics-listen" {
			i++
			continue
		}
		out = append(out, f[i])
	}
	return strings.Join(out, " ")
}

// metricsListenOf is the -metrics-listen address of a start command, or "".
func metricsListenOf(cmd string) string {
	f := strings.Fields(cmd)
	for i := 0; i+1 < len(f); i++ {
		if f[i] == "-metrics-listen" || f[i] == "--metrics-listen" {
			return f[i+1]
		}
	}
	return ""
}
