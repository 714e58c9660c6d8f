package kongfake

import (
	"os"
	"os/exec"
	"testing"
)

func TestDeckProbe(t *testing.T) {
	if os.Getenv("DECK_PROBE") == "" {
		t.Skip()
	}
	f := Start(t, Options{})
	for _, args := range [][]string{{"ping"}, {"dump", "-o", "-", "--select-tag", "managed-by:service-registry"}} {
		out, err := exec.Command("deck", append(args, "--kong-addr", f.URL(), "--verbose", "2")...).CombinedOutput()
		t.Logf("%v: %v\n%s", args, err, out)
	}
	t.Logf("%v", f.Counts())
}
