package kongsync

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"strconv"
	"strings"
	"sync"

	"github.com/kong/go-kong/kong"
	"golang.org/x/sync/errgroup"

	"github.com/kong-service-registry/service-registry/internal/translator"
)

// Refusal is one entity Kong refused (HTTP 400: the entity is wrong, and
// sending it again cannot help). The rest of the plan is applied anyway.
type Refusal struct {
	Kind    string `json:"kind"`    // services, routes, upstreams, targets, plugins
	Name    string `json:"name"`    // entity name (the address for a target)
	Route   string `json:"route"`   // the sr-host/sr-path tag pair it was made for
	Message string `json:"message"` // Kong's answer
}

// execute runs p's phases in order, each with bounded concurrency, and
// collects every failure instead of stopping at the first: Kong's refusals
// of single entities apart from errors (transport, 5xx, auth), which say
// nothing about the entity.
func execute(ctx context.Context, c *client, p *plan, concurrency int) ([]Refusal, []error) {
	var (
		mu      sync.Mutex
		errs    []error
		refused []Refusal
		// fastFailed: a catch-all entity failed, so its route (the last
		// phase) is not written: without its plugin it would turn Kong's
		// 404 for unknown routes into a 503.
		fastFailed bool
		// globalFailed: the global plugin (the first phase) is not in
		// Kong, so the route services' service-registry plugins it
		// replaces are not deleted: without either, Kong would proxy the
		// routes with no rate limit, breaker or instance choice.
		globalFailed bool
	)
	// registryFailed: a route service's service-registry plugin was not
	// written, so the global plugin (the last phase, on a switch to scope
	// service) is not deleted either.
	registryFailed := false
	run := func(phase []op) {
		g, gctx := errgroup.WithContext(ctx)
		g.SetLimit(concurrency)
		// The previous phases' goroutines are done.
		skipFast, keepRegistry, keepGlobal := fastFailed, globalFailed, registryFailed
		for _, o := range phase {
			if skipFast && o.act != remove && translator.IsFastPath(o.e.tagList()) {
				continue
			}
			if keepRegistry && replacedByGlobal(o) {
				continue
			}
			if keepGlobal && o.act == remove && global(o.e) {
				continue
			}
			g.Go(func() error {
				var err error
				if o.act == remove {
					err = o.e.remove(gctx, c)
				} else {
					err = o.e.write(gctx, c, o.act == create)
				}
				if err == nil {
					return nil
				}
				mu.Lock()
				defer mu.Unlock()
				fastFailed = fastFailed || (o.act != remove && translator.IsFastPath(o.e.tagList()))
				globalFailed = globalFailed || (o.act != remove && global(o.e))
				registryFailed = registryFailed || (o.act != remove && routeRegistryPlugin(o.e))
				if r, ok := refusal(o, err); ok {
					refused = append(refused, r)
				} else {
					errs = append(errs, wrapOp(o, err))
				}
				return nil
			})
		}
		_ = g.Wait()
	}
	phases := p.phases()
	if len(p.last) > 0 {
		phases = phases[:len(phases)-1]
	}
	for _, phase := range phases {
		run(phase)
	}
	if globalFailed && len(p.fallback) > 0 {
		// The global plugin is not in Kong: the route services (written
		// by now, new routes' included) get their own plugins instead, so
		// none is left without an instance while Kong refuses it.
		run(p.fallback)
	}
	if len(p.last) > 0 {
		run(p.last)
	}
	return refused, errs
}

// routeRegistryPlugin reports whether e is a route service's
// service-registry plugin (not the catch-all's, not the global one).
func routeRegistryPlugin(e entity) bool {
	return e.kind() == kindPlugin && e.label() == translator.PluginRegistry && !translator.IsFastPath(e.tagList()) && !global(e)
}

// replacedByGlobal reports whether o deletes a route service's
// service-registry plugin, the kind the global plugin replaces. The name
// comes from a full plan's listing: a change-triggered plan's deletes
// carry ids only, but such a plan never writes the global plugin (its
// body is fixed for the process, and a failed write makes the next apply
// a full one).
func replacedByGlobal(o op) bool {
	return o.act == remove && routeRegistryPlugin(o.e)
}

// refusal reports whether err is Kong refusing the entity itself.
func refusal(o op, err error) (Refusal, bool) {
	var apiErr *kong.APIError
	if o.act == remove || !errors.As(err, &apiErr) {
		return Refusal{}, false
	}
	switch apiErr.Code() {
	case http.StatusBadRequest:
	case http.StatusConflict:
		// Kong holds one global instance per plugin name: an operator's
		// own global service-registry plugin (not tagged as ours) has the
		// place of ours, and sending ours again cannot help while it is
		// there. Any other conflict (a name taken) stays an error.
		if !global(o.e) {
			return Refusal{}, false
		}
	default:
		return Refusal{}, false
	}
	return Refusal{Kind: o.e.kind().String(), Name: o.e.label(), Route: tagPair(o.e.tagList()),
		Message: kongMessage(apiErr)}, true
}

// kongMessage is the "message" of Kong's error body, which go-kong keeps
// only inside its error text.
func kongMessage(e *kong.APIError) string {
	if _, q, ok := strings.Cut(e.Error(), "(message: "); ok {
		if m, err := strconv.Unquote(strings.TrimSuffix(q, ")")); err == nil {
			return m
		}
	}
	return e.Error()
}

func wrapOp(o op, err error) error {
	verb := map[action]string{remove: "deleting", update: "writing", create: "creating"}[o.act]
	k := o.e.kind().String()
	return fmt.Errorf("%s %s %s: %w", verb, k[:len(k)-1], o.e.label(), err)
}
