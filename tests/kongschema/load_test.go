package kongschema

import (
	"encoding/json"
	"strings"
	"testing"
)

// Kong's own answers, from valid_version of Kong 3.4.2/3.9.3's plugins.lua
// run with their lualib/version.lua under LuaJIT (tests/KONG-NOTES.md).
func TestKongVersionIsKongsParser(t *testing.T) {
	for in, want := range map[string]string{
		"0.1.0": "0.1.0", "1": "1", "1.2": "1.2", "v1.2.3": "1.2.3", "1.2.3-rc1": "1.2.3",
		"e602c64": "602", "e602c64-dirty": "602", "1.2.": "1.2", "01.02.003": "1.2.3",
		".1.2": "1.2", "1.2.3.": "1.2.3", "abc-1.2-x": "1.2", "0.0.0": "0.0.0",
		"1.2.3 4.5.6": "1.2.3", " 1.2.3": "1.2.3", "12345678901234567890.1.1": "1.2345678901235e+19.1.1",
		"dev": "", "": "", "1.2.3.4": "", "1..2": "", "1.2.3.4.5": "", "9.9.9.9-1": "", "1.2.3.4x": "",
	} {
		got, ok := KongVersion(in)
		if ok != (want != "") || got != want {
			t.Errorf("KongVersion(%q) = %q, %v; Kong gives %q", in, got, ok, want)
		}
	}
	if _, ok := KongVersion(json.Number("1")); ok {
		t.Error("a JSON number Version: Kong requires a string")
	}
}

func dumpWith(mod func(p map[string]any)) []byte {
	p := map[string]any{
		"Name": "sr", "Phases": []any{"access", "log"}, "Version": "0.1.0", "Priority": 905,
		"Schema": map[string]any{"name": "sr", "fields": []any{map[string]any{"config": map[string]any{"type": "record", "fields": []any{}}}}},
	}
	if mod != nil {
		mod(p)
	}
	b, _ := json.Marshal(map[string]any{"Protocol": "ProtoBuf:1", "Plugins": []any{p}})
	return b
}

func TestCheckLoadFailsAsKongFails(t *testing.T) {
	const prefix = "error loading plugin schemas: on plugin 'sr': "
	for _, c := range []struct {
		name string
		mod  func(map[string]any)
		want string // "" = loads
	}{
		{"valid", nil, ""},
		{"integral float priority", func(p map[string]any) { p["Priority"] = 905.0 }, ""},
		{"version dev", func(p map[string]any) { p["Version"] = "dev" },
			`Plugin "sr" cannot be loaded because its VERSION field does not follow the "x.y.z" format, got: "dev".`},
		{"version missing", func(p map[string]any) { delete(p, "Version") },
			`Plugin "sr" cannot be loaded because its VERSION field does not follow the "x.y.z" format, got: "nil".`},
		{"version four parts", func(p map[string]any) { p["Version"] = "1.2.3.4" },
			`its VERSION field does not follow the "x.y.z" format, got: "1.2.3.4".`},
		{"commit hash kept by Kong", func(p map[string]any) { p["Version"] = "e602c64" }, ""},
		{"fractional priority", func(p map[string]any) { p["Priority"] = 905.5 },
			`Plugin "sr" cannot be loaded because its PRIORITY field is not a valid integer number, got: "905.5".`},
		{"string priority", func(p map[string]any) { p["Priority"] = "905" },
			`its PRIORITY field is not a valid integer number, got: "905".`},
		{"no priority", func(p map[string]any) { delete(p, "Priority") },
			"sr plugin is enabled but not installed;\nno plugin found"},
		{"other name", func(p map[string]any) { p["Name"] = "other" },
			"sr plugin is enabled but not installed;\nno plugin found"},
		{"no phases", func(p map[string]any) { delete(p, "Phases") },
			"bad argument #1 to 'ipairs' (table expected, got nil)"},
		{"response and header_filter", func(p map[string]any) { p["Phases"] = []any{"response", "header_filter"} },
			"Plugin \"sr\" can't be loaded because it implements both `response` and `header_filter` or `body_filter` methods."},
		{"no schema", func(p map[string]any) { delete(p, "Schema") }, "no configuration schema found for plugin: sr"},
		{"schema without name", func(p map[string]any) { delete(p["Schema"].(map[string]any), "name") },
			"schema violation (name: required field missing)"},
	} {
		err := CheckLoad("sr", dumpWith(c.mod))
		switch {
		case c.want == "" && err != nil:
			t.Errorf("%s: %v; Kong loads it", c.name, err)
		case c.want != "" && (err == nil || !strings.HasPrefix(err.Error(), prefix) || !strings.HasSuffix(err.Error(), c.want)):
			t.Errorf("%s: got %v\nwant %s...%s", c.name, err, prefix, c.want)
		}
	}
	if err := CheckLoad("sr", []byte("not json")); err == nil || !strings.HasPrefix(err.Error(), "failed loading external plugins: failed decoding plugin info: ") {
		t.Errorf("undecodable dump: %v", err)
	}
	// Seen on Kong 3.9.3 with a binary that printed nothing.
	if err := CheckLoad("sr", nil); err == nil || err.Error() != "failed loading external plugins: failed decoding plugin info: Expected value but found T_END at character 1" {
		t.Errorf("empty dump: %v", err)
	}
}

func TestLuaQuote(t *testing.T) {
	// LuaJIT: string.format("%q", 'a"b\\c\nd\re\0f') and a control byte before a digit.
	if got, want := luaQuote("a\"b\\c\nd\re\x00f\x011"), "\"a\\\"b\\\\c\\\nd\\13e\\0f\\0011\""; got != want {
		t.Errorf("luaQuote = %s, want %s", got, want)
	}
}
