package kongsync

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"net/http"

	"github.com/kong-service-registry/service-registry/internal/translator"
)

// target is one backend address of one of our upstreams. Kong serves
// targets only under their upstream (/upstreams/{id}/targets), and its
// target PUT only updates: a new target is a POST.
type target struct {
	ID       string   `json:"id"`
	Target   string   `json:"target"`
	Weight   int      `json:"weight"`
	Tags     []string `json:"tags"`
	Upstream *ref     `json:"upstream"`
}

func newTarget(t translator.Target, upstreamID string) target {
	return target{ID: t.ID, Target: t.Target, Weight: t.Weight, Tags: t.Tags, Upstream: &ref{ID: upstreamID}}
}

// targetSetHash fingerprints an upstream's desired targets.
func targetSetHash(ts []translator.Target) string {
	h := sha256.New()
	for _, t := range ts {
		fmt.Fprintf(h, "%s=%d;", t.Target, t.Weight)
	}
	return hex.EncodeToString(h.Sum(nil))
}

func (t target) kind() kind        { return kindTarget }
func (t target) id() string        { return t.ID }
func (t target) label() string     { return t.Target }
func (t target) parent() string    { return refID(t.Upstream) }
func (t target) tagList() []string { return t.Tags }

func (t target) same(have entity) bool {
	h, ok := have.(target)
	return ok && t.Target == h.Target && t.Weight == h.Weight && sameSet(t.Tags, h.Tags) &&
		t.parent() == h.parent()
}

func (t target) collection() string { return "/upstreams/" + t.parent() + "/targets" }

func (t target) write(ctx context.Context, c *client, create bool) error {
	if !create {
		err := c.do(ctx, http.MethodPut, t.collection()+"/"+t.ID, nil, t, nil)
		if !isNotFound(err) {
			return err
		}
		// Gone from Kong meanwhile: create it again.
		return c.do(ctx, http.MethodPost, t.collection(), nil, t, nil)
	}
	err := c.do(ctx, http.MethodPost, t.collection(), nil, t, nil)
	if StatusCode(err) == http.StatusConflict {
		// Already there (written by an apply whose answer was lost).
		err = c.do(ctx, http.MethodPut, t.collection()+"/"+t.ID, nil, t, nil)
	}
	return err
}

func (t target) remove(ctx context.Context, c *client) error {
	err := c.do(ctx, http.MethodDelete, t.collection()+"/"+t.ID, nil, nil, nil)
	if isNotFound(err) {
		return nil
	}
	return err
}

// managedTargets keeps the targets tagged as ours (Kong ignores the tags
// filter on /upstreams/{id}/targets).
func managedTargets(ts []target) map[string]entity {
	m := make(map[string]entity, len(ts))
	for _, t := range ts {
		if hasTag(t.Tags, translator.TagManaged) {
			m[t.ID] = t
		}
	}
	return m
}
