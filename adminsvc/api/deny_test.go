package api

import (
	"fmt"
	"net/http"
	"strings"
	"testing"
)

// TestDenyBackends is issue 13's defect 6: backends inside the gateway's
// own network (cloud metadata, link-local, Kong's Admin API, 0.0.0.0) are
// refused by default; loopback stays allowed unless listed.
func TestDenyBackends(t *testing.T) {
	deny, err := ParseDenyList(DefaultDenyBackends+",10.9.0.0/16,db.internal:5432", "http://127.0.0.1:8001")
	if err != nil {
		t.Fatal(err)
	}
	a := newTestAPI(t, func(c *Config) { c.Deny = deny })
	for i, c := range []struct {
		backend string
		denied  string // "" = allowed
	}{
		{"http://169.254.169.254/latest/meta-data", "169.254.0.0/16"},
		{"https://169.254.10.1:8443", "169.254.0.0/16"},
		{"http://[fe80::1]:80", "fe80::/10"},
		{"http://0.0.0.0:8080", "0.0.0.0/32"},
		{"http://[::]:8080", "::/128"},
		{"http://127.0.0.1:8001", "the kong admin api"},
		{"http://localhost:8001/", "the kong admin api"},
		{"http://[::1]:8001", "the kong admin api"},
		{"http://10.9.3.4:80", "10.9.0.0/16"},
		{"http://DB.internal:5432", "db.internal:5432"},
		{"http://127.0.0.1:8080", ""},
		{"http://localhost:3000", ""},
		{"http://db.internal:80", ""},
		{"http://10.8.3.4", ""},
	} {
		body := fmt.Sprintf(`{"host":"d%d.example","path":"/","backend":%q}`, i, c.backend)
		rec := a.do(http.MethodPost, "/register", body)
		if c.denied == "" {
			if rec.Code != http.StatusOK {
				t.Errorf("%s: %d %s, want allowed", c.backend, rec.Code, rec.Body.String())
			}
			continue
		}
		msg, _ := decode(t, rec)["error"].(string)
		if rec.Code != http.StatusBadRequest || !strings.HasPrefix(msg, "backend: ") || !strings.Contains(msg, "denied by "+c.denied) {
			t.Errorf("%s: %d %q, want 400 denied by %s", c.backend, rec.Code, msg, c.denied)
		}
	}
	rec := a.do(http.MethodPut, "/v1/services/meta/instances/i", `{"address":"169.254.169.254:80"}`)
	if msg, _ := decode(t, rec)["error"].(string); rec.Code != 400 || !strings.HasPrefix(msg, "address: 169.254.169.254:80 is not allowed") {
		t.Errorf("instance address: %d %q", rec.Code, msg)
	}
	if rec := a.do(http.MethodPut, "/v1/services/meta/instances/i", `{"address":"127.0.0.1:9000"}`); rec.Code != 200 {
		t.Errorf("loopback instance: %d %s", rec.Code, rec.Body.String())
	}
}

func TestParseDenyListRefusesNonsense(t *testing.T) {
	for _, list := range []string{"10.0.0.0/33", "host", "h:0", "h:99999", "[::1"} {
		if _, err := ParseDenyList(list, ""); err == nil {
			t.Errorf("%q accepted", list)
		}
	}
	if _, err := ParseDenyList("", ""); err != nil {
		t.Errorf("an empty list: %v", err)
	}
}
