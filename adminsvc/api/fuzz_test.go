package api

import (
	"bytes"
	"encoding/json"
	"net/url"
	"strings"
	"testing"

	"github.com/labstack/echo/v4"

	"github.com/kong-service-registry/service-registry/internal/registry"
	"github.com/kong-service-registry/service-registry/internal/routeopts"
)

// FuzzRegisterBody feeds arbitrary /register and /deregister bodies through
// the same decoding and validation the handlers use (readObject's
// json.Unmarshal, parseRegister, stringField) and checks what an accepted
// body guarantees downstream: nothing that could smuggle a header, a
// scheme outside http/https/ws/wss, a lowercase host, options that
// canonicalise to a fixed point, and a service name no other route shares.
func FuzzRegisterBody(f *testing.F) {
	for _, s := range []string{
		`{"host":"api.example.com","path":"/v1","backend":"http://api-v1:8080"}`,
		`{"host":"*.example.com","path":"/","backend":"wss://ws:443/x"}`,
		`{"host":"API.Example.COM","path":"/v2","backend":"https://10.0.0.1:9000","options":{"timeout":"45s","headers":{"X-API-Version":"2.0"},"rate_limit":{"enabled":true,"requests_per_min":100,"per_ip":true},"circuit_breaker":{"enabled":true,"failure_threshold":5,"timeout":"30s"},"retry":{"enabled":true,"max_attempts":3,"backoff":"linear"},"health_check_path":"/health","health_check_interval":"10s","future":1}}`,
		`{"host":"a.b","path":"/x","backend":"http://h:1","options":{"headers":{"X-Evil":"a\r\nSet-Cookie: x"}}}`,
		`{"host":"a.b","path":"/x","backend":"http://h:1","options":{"headers":{"Bad Name":"v"}}}`,
		`{"host":"a.b","path":"/x","backend":"file:///etc/passwd"}`,
		`{"host":"a.b","path":"/x","backend":"javascript:alert(1)"}`,
		`{"host":"a.b","path":"/x\r\nHost: evil","backend":"http://h:1"}`,
		`{"host":"a.b\r\n","path":"/x","backend":"http://h:1"}`,
		`{"host":"a.b","path":"/x","backend":"http://user:pw@h:1"}`,
		`{"host":"a.b","path":"/x","backend":"http://h:99999"}`,
		`{"host":"a.b","path":"/x","backend":"http://h:1","options":{"timeout":"6o"}}`,
		`{"host":"a.b","path":"/x","backend":"http://h:1","options":{"retry":{"max_attempts":-1}}}`,
		`{"host":"1.2.3.4","path":"/x","backend":"http://h:1"}`,
		`{"host":"a.b","path":"/%zz","backend":"http://h:1"}`,
		`[]`, `null`, `"x"`, `{}`, `{"host":5}`, ``,
	} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, body []byte) {
		var m map[string]json.RawMessage
		if json.Unmarshal(body, &m) != nil || m == nil {
			return // readObject answers 400 before any validation
		}
		// /deregister: only two string fields, never a panic.
		_, _ = stringField(m, "host", true)
		_, _ = stringField(m, "path", true)

		req, opts, err := parseRegister(m)
		if err != nil {
			if he, ok := err.(*echo.HTTPError); !ok || he.Code != 400 {
				t.Fatalf("validation error is not a 400 echo.HTTPError: %T %v", err, err)
			}
			return
		}
		for name, s := range map[string]string{"host": req.Host, "path": req.Path, "backend": req.Backend} {
			if strings.ContainsAny(s, "\r\n\x00 \t") {
				t.Fatalf("accepted %s with a control or space character: %q", name, s)
			}
		}
		if req.Host != strings.ToLower(req.Host) {
			t.Fatalf("host not lowercased: %q", req.Host)
		}
		if !strings.HasPrefix(req.Path, "/") {
			t.Fatalf("accepted path %q", req.Path)
		}
		u, perr := url.Parse(req.Backend)
		if perr != nil {
			t.Fatalf("accepted backend %q that does not parse: %v", req.Backend, perr)
		}
		switch u.Scheme {
		case "http", "https", "ws", "wss":
		default:
			t.Fatalf("accepted backend scheme %q", u.Scheme)
		}
		if u.User != nil || u.Host == "" {
			t.Fatalf("accepted backend %q (credentials or no host)", req.Backend)
		}
		if _, err := registry.InstanceFromBackend(req.Backend); err != nil {
			t.Fatalf("accepted backend %q the registry cannot turn into an instance: %v", req.Backend, err)
		}
		for name, v := range opts.Headers {
			if name == "" || strings.ContainsAny(name, "\r\n\x00 :") || strings.ContainsAny(v, "\r\n\x00") {
				t.Fatalf("accepted header %q: %q", name, v)
			}
		}
		// Canonical options are a fixed point: re-registering the stored
		// form is the idempotent case, not a 409.
		if req.Options != nil {
			_, again, err := routeopts.Parse(req.Options)
			if err != nil {
				t.Fatalf("stored options %s no longer parse: %v", req.Options, err)
			}
			if !bytes.Equal(again, req.Options) {
				t.Fatalf("canonical options not stable:\n%s\n%s", req.Options, again)
			}
		}
		name := registry.ServiceName(req.Host, req.Path)
		if name == "" || strings.ContainsAny(name, "{}") || len(name) > 120 {
			t.Fatalf("service name %q for %q %q", name, req.Host, req.Path)
		}
	})
}

// FuzzServiceNameInjective: two different routes never share a service
// name (a shared name would merge two routes' Kong entities).
func FuzzServiceNameInjective(f *testing.F) {
	f.Add("a.b", "/c/d", "a.b", "/c_d")
	f.Add("a", "/b/c", "a.b", "/c")
	f.Add("*.x.com", "/", "-.x.com", "/")
	f.Add("x.com", "/a~b", "x.com", "/a-b")
	f.Fuzz(func(t *testing.T, h1, p1, h2, p2 string) {
		if h1 == h2 && p1 == p2 {
			return
		}
		for _, hp := range [][2]string{{h1, p1}, {h2, p2}} {
			m := map[string]json.RawMessage{}
			m["host"], _ = json.Marshal(hp[0])
			m["path"], _ = json.Marshal(hp[1])
			m["backend"] = json.RawMessage(`"http://h:1"`)
			if _, _, err := parseRegister(m); err != nil {
				return // only routes the API accepts can collide in Kong
			}
		}
		h1, h2 = strings.ToLower(h1), strings.ToLower(h2)
		if h1 == h2 && p1 == p2 {
			return
		}
		if a, b := registry.ServiceName(h1, p1), registry.ServiceName(h2, p2); a == b {
			t.Fatalf("routes %q%q and %q%q share service name %q", h1, p1, h2, p2, a)
		}
	})
}
