package security

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/kong-service-registry/service-registry/internal/redistest"
	"github.com/kong-service-registry/service-registry/internal/registry"
	"github.com/kong-service-registry/service-registry/tests/faults"
	"github.com/kong-service-registry/service-registry/tests/harness"
	"github.com/kong-service-registry/service-registry/tests/kongfake"
	"github.com/redis/go-redis/v9"
)

const (
	redisPassword = "pw-Zq81-never-logged"
	wrongPassword = "pw-wrong-77x-never-logged"
	apiKey        = "key-Hh42-never-logged"
)

// tlsRedis starts redis-server with requirepass and a TLS listener whose
// certificate is signed by a fresh test CA; it returns the server, the TLS
// port and the CA.
func tlsRedis(t *testing.T) (*redistest.Server, int, *faults.CA) {
	ca := faults.NewCA(t)
	tlsPort := redistest.FreePort(t)
	rs := redistest.Start(t, redistest.Options{Password: redisPassword, Extra: ca.RedisTLS(tlsPort)})
	// The TLS port really speaks TLS and checks the password.
	c := redis.NewClient(&redis.Options{Addr: fmt.Sprintf("127.0.0.1:%d", tlsPort), Password: redisPassword, TLSConfig: ca.ClientConfig()})
	defer c.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if err := c.Ping(ctx).Err(); err != nil {
		t.Fatalf("redis TLS port: %v", err)
	}
	return rs, tlsPort, ca
}

// adminsvc over rediss:// with AUTH: works when it trusts the CA, refuses
// an untrusted certificate (verification is on) and a wrong password, and
// logs neither password nor API key even at debug level.
func TestAdminsvcRedisAuthTLS(t *testing.T) {
	_, tlsPort, ca := tlsRedis(t)
	url := fmt.Sprintf("rediss://:%s@127.0.0.1:%d/0", redisPassword, tlsPort)
	env := map[string]string{"SSL_CERT_FILE": ca.CAFile, "SR_API_KEYS": apiKey, "SR_LOG_LEVEL": "debug"}
	a := faults.StartAdminsvc(t, faults.AdminOptions{RedisURL: url, Env: env})
	waitUntil(t, 10*time.Second, "healthy over TLS", func() bool { return call(t, "GET", a.URL+"/health", nil).Status == 200 })
	if r := call(t, "POST", a.URL+"/register", map[string]any{"host": "tls.test", "path": "/a", "backend": "http://10.0.0.1:80"}, "X-API-Key", apiKey); r.Status != 200 {
		t.Fatalf("register over TLS: %d %s", r.Status, r.Raw)
	}
	call(t, "POST", a.URL+"/register", map[string]any{"host": "tls.test", "path": "/b", "backend": "http://10.0.0.1:80"}, "X-API-Key", "wrong-"+apiKey)

	// Untrusted certificate: the system roots do not know the test CA.
	untrusted := faults.StartAdminsvc(t, faults.AdminOptions{RedisURL: url, Env: map[string]string{"SSL_CERT_FILE": "/dev/null", "SR_NO_MIGRATE": "true", "SR_LOG_LEVEL": "debug"}})
	if r := call(t, "GET", untrusted.URL+"/health", nil); r.Status != 503 {
		t.Fatalf("health with an untrusted Redis certificate: %d %s", r.Status, r.Raw)
	}
	// Wrong password.
	wrong := faults.StartAdminsvc(t, faults.AdminOptions{RedisURL: fmt.Sprintf("rediss://:%s@127.0.0.1:%d/0", wrongPassword, tlsPort),
		Env: map[string]string{"SSL_CERT_FILE": ca.CAFile, "SR_NO_MIGRATE": "true", "SR_LOG_LEVEL": "debug"}})
	if r := call(t, "GET", wrong.URL+"/health", nil); r.Status != 503 {
		t.Fatalf("health with a wrong Redis password: %d %s", r.Status, r.Raw)
	}
	// Nor in any answer: health, metrics, errors.
	for _, svc := range []*faults.Adminsvc{a, untrusted, wrong} {
		for _, p := range []string{"/health", "/metrics", "/routes", "/v1/services", "/nope"} {
			r := call(t, "GET", svc.URL+p, nil, "X-API-Key", apiKey)
			for _, secret := range []string{redisPassword, wrongPassword, apiKey} {
				if strings.Contains(r.Raw, secret) {
					t.Errorf("GET %s answers a secret: %s", p, r.Raw)
				}
			}
		}
	}
	for name, log := range map[string]string{"adminsvc": a.Log(), "untrusted": untrusted.Log(), "wrong-password": wrong.Log()} {
		for _, secret := range []string{redisPassword, wrongPassword, apiKey} {
			if strings.Contains(log, secret) {
				t.Errorf("%s log contains a secret (%.6s...):\n%s", name, secret, log)
			}
		}
		if len(log) == 0 {
			t.Errorf("%s logged nothing: the grep proves nothing", name)
		}
	}
}

// The plugin over TLS with AUTH (ssl=true, ssl_verify=true, the test CA via
// SSL_CERT_FILE, as an operator would install it): routes from Redis. An
// untrusted certificate or a wrong password never routes, never crashes,
// and the plugin log has no password.
func TestPluginRedisAuthTLS(t *testing.T) {
	rs, tlsPort, ca := tlsRedis(t)
	t.Setenv("SSL_CERT_FILE", ca.CAFile) // inherited by the plugin server process
	be := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { _, _ = io.WriteString(w, "ok") }))
	t.Cleanup(be.Close)
	st := registry.NewStore(rs.Client(), registry.Options{})
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	for _, svc := range []string{"good", "badname", "badpw"} {
		if _, err := st.PutInstance(ctx, svc, registry.Instance{ID: "a", Address: be.Listener.Addr().String(), Weight: 1}); err != nil {
			t.Fatal(err)
		}
	}
	k := harness.Start(t, harness.Options{Binary: faults.PluginBinary(t)})
	redisCfg := func(pw, serverName string) map[string]any {
		m := map[string]any{"host": "127.0.0.1", "port": tlsPort, "password": pw, "ssl": true, "ssl_verify": true, "timeout_ms": 500}
		if serverName != "" {
			m["server_name"] = serverName
		}
		return m
	}
	for _, c := range []struct {
		name string
		cfg  map[string]any
	}{
		{"good", redisCfg(redisPassword, "")},
		{"badname", redisCfg(redisPassword, "not-the-cert.example")},
		{"badpw", redisCfg(wrongPassword, "")},
	} {
		k.AddService(harness.Service{Name: c.name, Host: "127.0.0.1", Port: 9, Retries: harness.Int(0)})
		if _, err := k.AddRoute(harness.Route{Name: c.name, Service: c.name, Paths: []string{"/" + c.name}}); err != nil {
			t.Fatal(err)
		}
		if _, err := k.AddPlugin(harness.PluginConfig{Service: c.name, Config: map[string]any{"registry": "redis", "service": c.name, "redis": c.cfg}}); err != nil {
			t.Fatal(err)
		}
	}
	hc := &http.Client{Timeout: 10 * time.Second}
	get := func(path string) int {
		r, err := hc.Get(k.URL() + path)
		if err != nil {
			t.Fatalf("GET %s: %v", path, err)
		}
		r.Body.Close()
		return r.StatusCode
	}
	waitUntil(t, 10*time.Second, "routing over TLS", func() bool { return get("/good") == 200 })
	for _, p := range []string{"/badname", "/badpw"} {
		for i := 0; i < 3; i++ {
			if s := get(p); s == 200 {
				t.Errorf("%s routed: TLS verification or AUTH not enforced", p)
			}
		}
	}
	if get("/good") != 200 || k.Process().Spawns() != 1 {
		t.Fatalf("plugin broken after failing backends (spawns %d)", k.Process().Spawns())
	}
	var pluginLog strings.Builder
	for _, line := range strings.Split(k.Logs(), "\n") {
		if strings.HasPrefix(strings.TrimSpace(line), "[service-registry:") {
			pluginLog.WriteString(line + "\n")
		}
	}
	if pluginLog.Len() == 0 {
		t.Fatalf("no plugin log lines to check:\n%s", k.Logs())
	}
	for _, secret := range []string{redisPassword, wrongPassword} {
		if strings.Contains(pluginLog.String(), secret) {
			t.Errorf("the plugin log contains a Redis password:\n%s", pluginLog.String())
		}
	}
}

// The Kong Admin token is a secret too: sent to Kong, never logged, even
// when Kong fails and adminsvc logs its errors at debug level.
func TestKongAdminTokenNotLogged(t *testing.T) {
	const token = "kong-token-Qw93-never-logged"
	rs := redistest.Start(t, redistest.Options{})
	var seen atomic.Int64
	k := kongfake.New(kongfake.Options{})
	hf := faults.NewHTTPFaults(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Header.Get("Kong-Admin-Token") == token {
			seen.Add(1)
		}
		k.ServeHTTP(w, r)
	}))
	a := faults.StartAdminsvc(t, faults.AdminOptions{RedisURL: rs.URL(), KongURL: hf.URL(), Env: map[string]string{
		"SR_KONG_ADMIN_TOKEN": token, "SR_LOG_LEVEL": "debug", "SR_KONG_MODE": "auto",
	}})
	hf.FailWith(500)
	if r := call(t, "POST", a.URL+"/register", map[string]any{"host": "tok.test", "path": "/a", "backend": "http://10.0.0.1:80"}); r.Status != 200 {
		t.Fatalf("register: %d %s", r.Status, r.Raw)
	}
	waitUntil(t, 10*time.Second, "a Kong error logged", func() bool { n, bad := hf.Counts(); return n > 0 && bad > 0 })
	hf.Heal()
	waitUntil(t, 15*time.Second, "the token sent to Kong", func() bool { return seen.Load() > 0 })
	for _, p := range []string{"/health", "/metrics"} {
		if r := call(t, "GET", a.URL+p, nil); strings.Contains(r.Raw, token) {
			t.Errorf("GET %s answers the Kong token", p)
		}
	}
	if strings.Contains(a.Log(), token) {
		t.Fatalf("the Kong Admin token is in the adminsvc log")
	}
}
