package breaker

import (
	"os"
	"testing"

	"github.com/kong-service-registry/service-registry/internal/redistest"
)

// TestMain silences go-redis' own logger: the fault tests kill Redis on
// purpose and its redial complaints would bury the test output.
func TestMain(m *testing.M) {
	redistest.SilenceClientLogs()
	os.Exit(m.Run())
}
