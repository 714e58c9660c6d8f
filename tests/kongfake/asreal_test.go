package kongfake

import (
	"bytes"
	"encoding/json"
	"net/http"
	"os"
	"reflect"
	"strings"
	"testing"
)

// The answers below were observed on real Kong 3.4.2 and 3.9.3 (Postgres
// mode, /opt/realkong and /opt/realkong39) for the same requests (issue 13
// defect 11). The fake must give them per version; with SR_TEST_KONG_ADMIN
// set (DB-mode Admin URLs, space-separated), the same table is checked
// against those real Kongs too.

const (
	diffService = "0b7c4d1e-3f4a-4b6c-9d8e-1a2b3c4d5e6f"
	diffPlugin  = "0b7c4d1e-3f4a-4b6c-9d8e-1a2b3c4d5e70"
	missingID   = "6f6b1cd3-1d3c-4b5e-9a3a-3c2f5b6a7d8e"
)

type asRealCase struct {
	name         string
	method, path string
	body         any
	status       map[string]int // by minor version "3.4"/"3.9"; "" for both
	want         map[string]map[string]any
	check        func(t *testing.T, body map[string]any)
}

func sv(msg string, fields map[string]any) map[string]any {
	return map[string]any{"code": 2.0, "name": "schema violation", "message": msg, "fields": fields}
}

func both(v map[string]any) map[string]map[string]any { return map[string]map[string]any{"": v} }

func asRealCases() []asRealCase {
	tagsNull := map[string]any{"code": 11.0, "name": "invalid options", "message": "invalid option (tags: cannot be null)", "options": map[string]any{"tags": "cannot be null"}}
	renameFields := func(json34 bool) map[string]any {
		rename := map[string]any{"headers": []any{"'b c' is not a valid header", nil, "invalid value: bad"}}
		if json34 {
			rename["json"] = "unknown field"
		}
		return map[string]any{"config": map[string]any{"rename": rename, "add": map[string]any{
			"json_types": []any{"expected one of: boolean, number, string"},
			"headers":    []any{nil, "invalid value: bad header", "invalid value: nocolon"}}}}
	}
	addMsg := "config.add: {\n  headers = {\n    [2] = \"invalid value: bad header\",\n    [3] = \"invalid value: nocolon\"\n  },\n  json_types = {\n    \"expected one of: boolean, number, string\"\n  }\n}"
	return []asRealCase{
		{name: "patch missing by name", method: "PATCH", path: "/services/nosuch", body: map[string]any{"retries": 1},
			status: map[string]int{"": 404}, want: both(map[string]any{"code": 6.0, "name": "not found",
				"message": `could not find the entity with '{name="nosuch"}'`, "fields": map[string]any{"name": "nosuch"}})},
		{name: "patch missing by id", method: "PATCH", path: "/services/" + missingID, body: map[string]any{"retries": 1},
			status: map[string]int{"": 404}, want: both(map[string]any{"code": 6.0, "name": "not found",
				"message": `could not find the entity with primary key '{id="` + missingID + `"}'`, "fields": map[string]any{"id": missingID}})},
		{name: "patch missing plugin", method: "PATCH", path: "/plugins/" + missingID, body: map[string]any{},
			status: map[string]int{"": 404}, want: both(map[string]any{"message": "Not found"})},
		{name: "patch missing target", method: "PATCH", path: "/upstreams/kongfake-diff-up/targets/1.2.3.4:81", body: map[string]any{},
			status: map[string]int{"": 404}, want: both(map[string]any{"message": "Not found"})},
		{name: "targets ignore tags", method: "GET", path: "/upstreams/kongfake-diff-up/targets?tags=other",
			status: map[string]int{"": 200}, check: func(t *testing.T, b map[string]any) {
				if d, _ := b["data"].([]any); len(d) != 1 {
					t.Errorf("tags filter applied to targets: %v", b)
				}
			}},
		{name: "bad header value", method: "POST", path: "/plugins", body: map[string]any{"name": "response-transformer",
			"config": map[string]any{"add": map[string]any{"headers": []any{"bad header"}}}},
			status: map[string]int{"": 400}, want: both(sv("schema violation (config.add: {\n  headers = {\n    \"invalid value: bad header\"\n  }\n})",
				map[string]any{"config": map[string]any{"add": map[string]any{"headers": []any{"invalid value: bad header"}}}}))},
		{name: "nested errors per version", method: "POST", path: "/plugins", body: map[string]any{"name": "response-transformer",
			"config": map[string]any{"rename": map[string]any{"headers": []any{"a:b c", "x:1", "bad"}, "json": []any{"a:b"}},
				"add": map[string]any{"json_types": []any{"zz"}, "headers": []any{"ok:1", "bad header", "nocolon"}}}},
			status: map[string]int{"": 400}, want: map[string]map[string]any{
				"3.4": sv("2 schema violations ("+addMsg+"; config.rename: {\n  headers = {\n    \"'b c' is not a valid header\",\n    [3] = \"invalid value: bad\"\n  },\n  json = \"unknown field\"\n})", renameFields(true)),
				"3.9": sv("2 schema violations ("+addMsg+"; config.rename: {\n  headers = {\n    \"'b c' is not a valid header\",\n    [3] = \"invalid value: bad\"\n  }\n})", renameFields(false)),
			}},
		{name: "ordering is unknown", method: "POST", path: "/plugins", body: map[string]any{"name": "response-transformer", "ordering": nil},
			status: map[string]int{"": 400}, want: both(sv("schema violation (ordering: unknown field)", map[string]any{"ordering": "unknown field"}))},
		{name: "plugin has no ordering", method: "GET", path: "/plugins/" + diffPlugin,
			status: map[string]int{"": 200}, check: func(t *testing.T, b map[string]any) {
				if _, ok := b["ordering"]; ok || b["name"] != "response-transformer" {
					t.Errorf("plugin: %v", b)
				}
			}},
		{name: "unknown protocol", method: "POST", path: "/routes", body: map[string]any{"protocols": []any{"ws"}, "paths": []any{"x"}},
			status: map[string]int{"": 400}, want: both(sv("schema violation (protocols: unknown type: ws)", map[string]any{"protocols": "unknown type: ws"}))},
		{name: "array errors", method: "POST", path: "/routes", body: map[string]any{"protocols": []any{"http", "ws"}, "paths": []any{"/ws"},
			"hosts": []any{"*.a.*", "*a.com", "a.com.*"}},
			status: map[string]int{"": 400}, want: both(sv("3 schema violations (hosts.1: invalid wildcard: must have at most one wildcard; "+
				"hosts.2: invalid wildcard: must be placed at leftmost or rightmost label; protocols.2: expected one of: grpc, grpcs, http, https, tcp, tls, tls_passthrough, udp)",
				map[string]any{"hosts": []any{"invalid wildcard: must have at most one wildcard", "invalid wildcard: must be placed at leftmost or rightmost label"},
					"protocols": []any{nil, "expected one of: grpc, grpcs, http, https, tcp, tls, tls_passthrough, udp"}}))},
		{name: "tag element error", method: "POST", path: "/services", body: map[string]any{"host": "x", "tags": []any{"ok", "bad,tag"}},
			status: map[string]int{"": 400}, want: both(sv("schema violation (tags.2: invalid tag 'bad,tag': expected printable ascii (except `,` and `/`) or valid utf-8 sequences)",
				map[string]any{"tags": []any{nil, "invalid tag 'bad,tag': expected printable ascii (except `,` and `/`) or valid utf-8 sequences"}}))},
		{name: "empty tags filter", method: "GET", path: "/services?tags=",
			status: map[string]int{"3.4": 500, "3.9": 400},
			want:   map[string]map[string]any{"3.4": {"message": "An unexpected error occurred"}, "3.9": tagsNull}},
	}
}

type sendFunc func(method, path string, body any) (int, map[string]any)

func runAsReal(t *testing.T, minor string, send sendFunc) {
	// Idempotent setup (PUT by id/name; a repeated POST just conflicts).
	send("PUT", "/upstreams/kongfake-diff-up", map[string]any{})
	send("POST", "/upstreams/kongfake-diff-up/targets", map[string]any{"target": "1.2.3.4:80", "tags": []any{"t1"}})
	send("PUT", "/services/"+diffService, map[string]any{"name": "kongfake-diff", "host": "x"})
	send("PUT", "/plugins/"+diffPlugin, map[string]any{"name": "response-transformer", "service": map[string]any{"id": diffService}})
	for _, c := range asRealCases() {
		t.Run(c.name, func(t *testing.T) {
			st, body := send(c.method, c.path, c.body)
			wantSt, ok := c.status[minor]
			if !ok {
				wantSt = c.status[""]
			}
			if st != wantSt {
				t.Errorf("status %d, want %d (%v)", st, wantSt, body)
			}
			want, ok := c.want[minor]
			if !ok {
				want = c.want[""]
			}
			if want != nil && !reflect.DeepEqual(body, want) {
				got, _ := json.Marshal(body)
				exp, _ := json.Marshal(want)
				t.Errorf("body\n got %s\nwant %s", got, exp)
			}
			if c.check != nil {
				c.check(t, body)
			}
		})
	}
}

func TestFakeAnswersAsRealKong(t *testing.T) {
	for _, v := range []string{"3.4.2", "3.9.3"} {
		t.Run(v, func(t *testing.T) {
			f := New(Options{Version: v})
			runAsReal(t, v[:3], func(m, p string, b any) (int, map[string]any) { return call(t, f, m, p, b) })
		})
	}
}

func TestRealKongAnswersAsRecorded(t *testing.T) {
	urls := strings.Fields(os.Getenv("SR_TEST_KONG_ADMIN"))
	if len(urls) == 0 {
		t.Skip("SR_TEST_KONG_ADMIN not set")
	}
	for _, u := range urls {
		send := func(m, p string, b any) (int, map[string]any) {
			var rd *bytes.Reader
			if b != nil {
				raw, _ := json.Marshal(b)
				rd = bytes.NewReader(raw)
			} else {
				rd = bytes.NewReader(nil)
			}
			req, _ := http.NewRequest(m, u+p, rd)
			req.Header.Set("Content-Type", "application/json")
			resp, err := http.DefaultClient.Do(req)
			if err != nil {
				t.Fatal(err)
			}
			defer resp.Body.Close()
			var out map[string]any
			_ = json.NewDecoder(resp.Body).Decode(&out)
			return resp.StatusCode, out
		}
		_, info := send("GET", "/", nil)
		version, _ := info["version"].(string)
		t.Run(version, func(t *testing.T) { runAsReal(t, version[:3], send) })
	}
}
