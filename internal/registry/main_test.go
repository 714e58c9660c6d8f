package registry_test

import (
	"testing"

	"github.com/kong-service-registry/service-registry/internal/redistest"
)

// TestMain stops the Redis Cluster the store tests share.
func TestMain(m *testing.M) { redistest.Main(m) }
