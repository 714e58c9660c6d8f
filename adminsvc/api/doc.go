// Package api is adminsvc's HTTP API on Echo: the go-proxy registry calls
// (POST /register, POST /deregister, GET /routes, GET /health), the /v1
// extensions (services, instances, weights, maintenance, events), the
// Prometheus exposition and the OpenAPI document.
//
// Handlers return errors; one error handler (errors.go) writes every error
// as {"error": "..."}. Validation of what the API accepts lives here
// (validate.go) or in internal/registry when the store must enforce it too.
//
// It must not talk to Kong (it only asks its Sync for state and nudges it),
// must not log secrets, and must never fail a registration because Kong is
// unreachable.
package api
