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
	)
	for _, phase := range p.phases() {
		g, gctx := errgroup.WithContext(ctx)
		g.SetLimit(concurrency)
		skipFast := fastFailed // the previous phases' goroutines are done
		for _, o := range phase {
			if skipFast && o.act != remove && translator.IsFastPath(o.e.tagList()) {
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
	return refused, errs
}

// refusal reports whether err is Kong refusing the entity itself.
func refusal(o op, err error) (Refusal, bool) {
	var apiErr *kong.APIError
	if o.act == remove || !errors.As(err, &apiErr) || apiErr.Code() != http.StatusBadRequest {
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
