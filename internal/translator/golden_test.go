package translator

import (
	"bytes"
	"encoding/json"
	"flag"
	"os"
	"path/filepath"
	"testing"
)

var update = flag.Bool("update", false, "rewrite testdata/golden/*/out from the current translator")

// goldenInput is the file format of testdata/golden/<case>/in.
type goldenInput struct {
	Routes  []RouteInput `json:"routes"`
	Options Options      `json:"options"`
}

func TestGolden(t *testing.T) {
	dirs, err := filepath.Glob("testdata/golden/*")
	if err != nil || len(dirs) == 0 {
		t.Fatalf("no golden cases: %v", err)
	}
	for _, dir := range dirs {
		t.Run(filepath.Base(dir), func(t *testing.T) {
			raw, err := os.ReadFile(filepath.Join(dir, "in"))
			if err != nil {
				t.Fatal(err)
			}
			var in goldenInput
			dec := json.NewDecoder(bytes.NewReader(raw))
			dec.DisallowUnknownFields()
			if err := dec.Decode(&in); err != nil {
				t.Fatalf("decoding in: %v", err)
			}
			got, err := json.MarshalIndent(Translate(in.Routes, in.Options), "", "  ")
			if err != nil {
				t.Fatal(err)
			}
			got = append(got, '\n')
			outPath := filepath.Join(dir, "out")
			if *update {
				if err := os.WriteFile(outPath, got, 0o644); err != nil {
					t.Fatal(err)
				}
				return
			}
			want, err := os.ReadFile(outPath)
			if err != nil {
				t.Fatalf("%v (run go test -update)", err)
			}
			if !bytes.Equal(got, want) {
				t.Errorf("translation differs from %s (rerun with -update and review the diff):\n%s", outPath, got)
			}
		})
	}
}
