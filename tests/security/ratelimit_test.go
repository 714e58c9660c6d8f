package security

import (
	"fmt"
	"testing"

	"github.com/kong-service-registry/service-registry/internal/redistest"
	"github.com/kong-service-registry/service-registry/tests/faults"
)

// The registry API's own rate limit (SR_RATE_LIMIT per minute) is kept per
// API key: one client running over its limit gets 429 with Retry-After,
// another key is unaffected.
func TestRegistryRateLimitPerKey(t *testing.T) {
	rs := redistest.Start(t, redistest.Options{})
	a := faults.StartAdminsvc(t, faults.AdminOptions{RedisURL: rs.URL(), Env: map[string]string{
		"SR_RATE_LIMIT": "5", "SR_API_KEYS": "key-one-123,key-two-456",
	}})
	statuses := map[int]int{}
	for i := 0; i < 8; i++ {
		statuses[call(t, "GET", a.URL+"/routes", nil, "X-API-Key", "key-one-123").Status]++
	}
	if statuses[200] != 5 || statuses[429] != 3 {
		t.Fatalf("key one: %v (want 5×200, 3×429)", statuses)
	}
	if r := call(t, "GET", a.URL+"/routes", nil, "X-API-Key", "key-two-456"); r.Status != 200 {
		t.Fatalf("key two limited by key one's traffic: %d", r.Status)
	}
}

// Without keys the limit is per client IP, and the client IP must come
// from the connection, not from headers the client writes: otherwise every
// request with a new X-Forwarded-For is a new client and the limit is void.
func TestRegistryRateLimitNotSpoofable(t *testing.T) {
	rs := redistest.Start(t, redistest.Options{})
	a := faults.StartAdminsvc(t, faults.AdminOptions{RedisURL: rs.URL(), Env: map[string]string{"SR_RATE_LIMIT": "5"}})
	statuses := map[int]int{}
	for i := 0; i < 10; i++ {
		ip := fmt.Sprintf("203.0.113.%d", i+1)
		statuses[call(t, "GET", a.URL+"/routes", nil, "X-Forwarded-For", ip, "X-Real-IP", ip).Status]++
	}
	if statuses[429] != 5 {
		t.Fatalf("bug: 10 requests from one connection with forged X-Forwarded-For/X-Real-IP: %v (want 5 limited); "+
			"echo's default RealIP trusts those headers; fix: e.IPExtractor = echo.ExtractIPDirect() in adminsvc/api/server.go "+
			"(or ExtractIPFromXFFHeader with only the operator's proxies trusted)", statuses)
	}
}
