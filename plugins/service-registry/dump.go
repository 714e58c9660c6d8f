package main

import (
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"os"
	"reflect"

	"github.com/Kong/go-pdk/server"
)

// dump prints go-pdk's own -dump output enriched with each field's declared
// default and validators, keeping the outer shape Kong reads:
// {"Protocol","SocketPath","Plugins":[{"Name","Phases","Version","Priority","Schema"}]}.
func dump(w io.Writer, version string) error {
	raw, err := pdkDump(version)
	if err != nil {
		return err
	}
	out, err := enrichDump(raw)
	if err != nil {
		return err
	}
	_, err = w.Write(append(out, '\n'))
	return err
}

// pdkDump runs go-pdk's dump (server.StartServer with -dump in os.Args)
// with os.Stdout pointed at a pipe, and returns what it printed.
func pdkDump(version string) ([]byte, error) {
	r, w, err := os.Pipe()
	if err != nil {
		return nil, err
	}
	stdout := os.Stdout
	os.Stdout = w
	done := make(chan []byte)
	go func() {
		b, _ := io.ReadAll(r)
		done <- b
	}()
	err = server.StartServer(New, version, priority)
	os.Stdout = stdout
	_ = w.Close()
	b := <-done
	_ = r.Close()
	if err != nil {
		return nil, fmt.Errorf("go-pdk dump: %w", err)
	}
	if len(bytes.TrimSpace(b)) == 0 {
		return nil, fmt.Errorf("go-pdk dump printed nothing")
	}
	return b, nil
}

// enrichDump adds the `sr` tag declarations to the config record of a
// go-pdk dump.
func enrichDump(raw []byte) ([]byte, error) {
	var info map[string]any
	dec := json.NewDecoder(bytes.NewReader(raw))
	dec.UseNumber()
	if err := dec.Decode(&info); err != nil {
		return nil, fmt.Errorf("decoding go-pdk dump: %w", err)
	}
	plugins, _ := info["Plugins"].([]any)
	if len(plugins) != 1 {
		return nil, fmt.Errorf("go-pdk dump: expected one plugin, got %d", len(plugins))
	}
	p, _ := plugins[0].(map[string]any)
	schema, _ := p["Schema"].(map[string]any)
	fields, _ := schema["fields"].([]any)
	if len(fields) != 1 {
		return nil, fmt.Errorf("go-pdk dump: expected the config field only")
	}
	cfgField, _ := fields[0].(map[string]any)
	cfg, _ := cfgField["config"].(map[string]any)
	sub, _ := cfg["fields"].([]any)
	if cfg == nil || sub == nil {
		return nil, fmt.Errorf("go-pdk dump: no config record")
	}
	if err := enrichRecord(sub, reflect.TypeOf(Config{})); err != nil {
		return nil, fmt.Errorf("enriching schema: %w", err)
	}
	// Kong requires config as a whole; go-pdk leaves it bare.
	cfg["required"] = true
	return json.Marshal(info)
}
