package kongschema

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"strconv"
	"strings"
)

// CheckLoad applies the checks Kong 3.4.2 and 3.9.3 make when they load the
// go-pdk plugin called name (the plugin server's name, which is the
// executable's base name) from its -dump, in Kong's order, and returns
// Kong's start error worded as Kong words it. Read from
// kong/runloop/plugin_servers (process.lua, init.lua, 3.9: plugin.lua),
// kong/db/dao/plugins.lua (load_plugin_handler) and
// kong/db/schema/plugin_loader.lua (load_subschema); both versions agree on
// every rule here. Seen on the real Kongs: tests/KONG-NOTES.md.
//
// A dump Kong cannot decode fails earlier, outside the per-plugin loop:
// Kong 3.9.3's wording is returned (3.4.2 raises "Not a plugin info table"
// from process.lua instead).
func CheckLoad(name string, dump []byte) error {
	var top any
	dec := json.NewDecoder(bytes.NewReader(dump))
	dec.UseNumber()
	if len(bytes.TrimSpace(dump)) == 0 {
		return errors.New("failed loading external plugins: failed decoding plugin info: Expected value but found T_END at character 1")
	}
	if err := dec.Decode(&top); err != nil {
		return fmt.Errorf("failed loading external plugins: failed decoding plugin info: %w", err)
	}
	if msg := loadError(name, top); msg != "" {
		return fmt.Errorf("error loading plugin schemas: on plugin '%s': %s", name, msg)
	}
	return nil
}

// loadError is the message Kong puts after "on plugin '<name>': ", or "".
func loadError(name string, top any) string {
	// process.lua: (dump.Plugins or dump)[1]; 3.4 registers every entry by
	// Name, 3.9 the first; either way the plugin is found by its Name.
	var list []any
	switch t := top.(type) {
	case map[string]any:
		list, _ = t["Plugins"].([]any)
	case []any:
		list = t
	default:
		return "not a plugin info table"
	}
	var info map[string]any
	for _, p := range list {
		if m, ok := p.(map[string]any); ok && m["Name"] == name {
			info = m
			break
		}
	}
	notInstalled := name + " plugin is enabled but not installed;\nno plugin found"
	if info == nil {
		return notInstalled
	}
	// build_phases runs ipairs(plugin.phases) before anything else.
	var phases []any
	switch t := info["Phases"].(type) {
	case []any:
		phases = t
	case map[string]any: // a table without an array part: no phases
	default:
		return "bad argument #1 to 'ipairs' (table expected, got " + luaType(t) + ")"
	}
	// load_plugin: `plugin and plugin.PRIORITY`: nil and false mean absent.
	prio, present := info["Priority"]
	if !present || prio == nil || prio == false {
		return notInstalled
	}
	if !validPriority(prio) {
		return fmt.Sprintf("Plugin %s cannot be loaded because its PRIORITY field is not a valid integer number, got: %s.",
			luaQuote(name), luaQuote(dumpedToString(prio)))
	}
	if _, ok := KongVersion(info["Version"]); !ok {
		return fmt.Sprintf("Plugin %s cannot be loaded because its VERSION field does not follow the \"x.y.z\" format, got: %s.",
			luaQuote(name), luaQuote(dumpedToString(info["Version"])))
	}
	has := map[any]bool{}
	for _, ph := range phases {
		has[ph] = true
	}
	if has["response"] && (has["header_filter"] || has["body_filter"]) {
		return fmt.Sprintf("Plugin %s can't be loaded because it implements both `response` and `header_filter` or `body_filter` methods.", luaQuote(name))
	}
	// plugin_loader.load_subschema: MetaSubSchema:validate(schema).
	schema, _ := info["Schema"].(map[string]any)
	if schema == nil {
		return "no configuration schema found for plugin: " + name
	}
	if s, ok := schema["name"].(string); !ok || s == "" {
		return "schema violation (name: required field missing)"
	}
	if _, ok := schema["fields"].([]any); !ok {
		return "schema violation (fields: 'fields' must be a table)"
	}
	return ""
}

// validPriority is plugins.lua's valid_priority: a number, not NaN, not
// infinite, integral (905.0 passes, 905.5 and "905" do not).
func validPriority(v any) bool {
	n, ok := v.(json.Number)
	if !ok {
		return false
	}
	f, err := strconv.ParseFloat(string(n), 64)
	return err == nil && !math.IsInf(f, 0) && f == math.Floor(f)
}

// KongVersion is plugins.lua's valid_version on the lua "version" module's
// lenient parser: the first run of digits and dots in the string, split on
// dots (one trailing dot ignored), each part a number, at most three parts.
// It returns the version Kong keeps ("e602c64" gives "602", "v1.2.3-rc1"
// gives "1.2.3", "1" stays "1") and whether Kong accepts it at all. A JSON
// non-string is refused.
func KongVersion(v any) (string, bool) {
	s, ok := v.(string)
	if !ok {
		return "", false
	}
	start := strings.IndexAny(s, "0123456789")
	if start < 0 {
		return "", false
	}
	end := start
	for end < len(s) && (s[end] == '.' || (s[end] >= '0' && s[end] <= '9')) {
		end++
	}
	parts := strings.Split(strings.TrimSuffix(s[start:end], "."), ".")
	if len(parts) > 3 {
		return "", false
	}
	for i, p := range parts {
		if p == "" {
			return "", false
		}
		f, _ := strconv.ParseFloat(p, 64)
		parts[i] = luaNumber(f)
	}
	return strings.Join(parts, "."), true
}

// dumpedToString is Lua's tostring of a value cjson decoded from the dump
// (absent is nil).
func dumpedToString(v any) string {
	switch t := v.(type) {
	case nil:
		return "nil"
	case string:
		return t
	case bool:
		return strconv.FormatBool(t)
	case json.Number:
		f, err := strconv.ParseFloat(string(t), 64)
		if err != nil {
			return string(t)
		}
		return luaNumber(f)
	default:
		return "table: 0x" // Kong prints the table's address
	}
}

// luaType is Lua's type() of a decoded JSON value.
func luaType(v any) string {
	switch v.(type) {
	case nil:
		return "nil"
	case string:
		return "string"
	case bool:
		return "boolean"
	case json.Number:
		return "number"
	default:
		return "table"
	}
}

// luaQuote is LuaJIT's string.format("%q"): backslash before `"`, `\` and
// newline; other control bytes as decimal escapes (3 digits before a digit).
func luaQuote(s string) string {
	var b strings.Builder
	b.WriteByte('"')
	for i := 0; i < len(s); i++ {
		c := s[i]
		switch {
		case c == '"' || c == '\\' || c == '\n':
			b.WriteByte('\\')
			b.WriteByte(c)
		case c < ' ' || c == 0x7f:
			if i+1 < len(s) && s[i+1] >= '0' && s[i+1] <= '9' {
				fmt.Fprintf(&b, "\\%03d", c)
			} else {
				fmt.Fprintf(&b, "\\%d", c)
			}
		default:
			b.WriteByte(c)
		}
	}
	b.WriteByte('"')
	return b.String()
}
