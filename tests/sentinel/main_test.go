package sentinel

import (
	"context"
	"testing"
	"time"

	"github.com/kong-service-registry/service-registry/internal/redistest"
	"github.com/kong-service-registry/service-registry/internal/testbin"
)

// adminBin and pluginBin are built once for the package; the plugin's file
// name is the plugin name, as Kong requires.
var adminBin, pluginBin string

func TestMain(m *testing.M) {
	testbin.Main(m, func(dir string) (err error) {
		if adminBin, err = testbin.Build(dir, "./adminsvc", "adminsvc"); err != nil {
			return err
		}
		pluginBin, err = testbin.Build(dir, "./plugins/service-registry", "service-registry")
		return err
	})
}

// replicated blocks until every replica has acknowledged the primary's
// writes so far (WAIT), so a failover cannot lose what the test wrote:
// Redis replication is asynchronous and the tests assert on data, not on
// Redis' durability.
func replicated(t testing.TB, sn *redistest.Sentinel) {
	t.Helper()
	p := sn.Primary(t)
	want := len(sn.Data) - 1
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	n, err := p.Client().Do(ctx, "WAIT", want, 5000).Int()
	if err != nil || n != want {
		t.Fatalf("WAIT %d replicas: got %d, %v", want, n, err)
	}
}

// waitFor polls cond until it holds or d passes; cond says what it saw.
func waitFor(t testing.TB, d time.Duration, what string, cond func() (bool, string)) time.Duration {
	t.Helper()
	return testbin.WaitForWhy(t, d, what, cond)
}
