package harness

import (
	"fmt"
	"net/http"
	"strings"
)

// Kong's bundled response-transformer, the part the sync uses: add.headers
// on a service (kong/plugins/response-transformer/header_transformer.lua).
// In header_filter, for every response of a request whose matched service
// carries it (proxied or made by Kong or a plugin in access), it adds each
// "name:value" the response does not have yet; a header set in access or
// sent by the upstream stays alone (fastpath-facts (b)).

// AddResponseTransformer configures response-transformer add.headers on a
// service (name or id).
func (k *Kong) AddResponseTransformer(service string, addHeaders []string) error {
	k.mu.Lock()
	defer k.mu.Unlock()
	svc := k.services[service]
	if svc == nil {
		for _, s := range k.services {
			if s.Name == service {
				svc = s
			}
		}
	}
	if svc == nil {
		return fmt.Errorf("no service %q", service)
	}
	for _, h := range addHeaders {
		if name, _, ok := strings.Cut(h, ":"); !ok || name == "" {
			return fmt.Errorf("add.headers: invalid value %q (name:value)", h)
		}
	}
	if k.transformers == nil {
		k.transformers = map[string][]string{}
	}
	k.transformers[svc.ID] = append([]string(nil), addHeaders...)
	return nil
}

// transformResponse applies the matched service's add.headers to h.
func (k *Kong) transformResponse(rc *reqCtx, h http.Header) {
	if rc.service == nil {
		return
	}
	k.mu.RLock()
	add := k.transformers[rc.service.ID]
	k.mu.RUnlock()
	for _, item := range add {
		name, value, _ := strings.Cut(item, ":")
		if h.Get(name) == "" {
			h.Set(name, value)
		}
	}
}
