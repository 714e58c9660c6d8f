package kongsync

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"strings"

	"github.com/kong/go-kong/kong"
	"gopkg.in/yaml.v3"

	"github.com/kong-service-registry/service-registry/internal/translator"
)

// dblessSync pushes the whole declarative config: the operator's base
// config plus the registry's entities. A push replaces everything in Kong,
// so it happens only when the config changed or Kong lost it.
type dblessSync struct {
	c    *client
	base map[string]any
	// lastBody is the hash of the last pushed body; lastHash is Kong's
	// configuration_hash right after that push.
	lastBody [32]byte
	lastHash string
	// lastRefused are the routes dropped from the last push: still refused
	// while the config stays the same.
	lastRefused []Refusal
}

func parseBase(raw []byte) (map[string]any, error) {
	if len(bytes.TrimSpace(raw)) == 0 {
		return map[string]any{}, nil
	}
	var v any
	if err := yaml.Unmarshal(raw, &v); err != nil {
		return nil, fmt.Errorf("kong base config: %w", err)
	}
	// Re-encode through JSON so nested maps have string keys.
	b, err := json.Marshal(v)
	if err != nil {
		return nil, fmt.Errorf("kong base config: %w", err)
	}
	var m map[string]any
	if err := json.Unmarshal(b, &m); err != nil {
		return nil, fmt.Errorf("kong base config: expected a mapping: %w", err)
	}
	return m, nil
}

// BuildDeclarative returns the declarative config (JSON) for a DB-less push:
// base's entities, minus any tagged managed-by (the registry owns those),
// plus st's services and upstreams.
func BuildDeclarative(base map[string]any, st translator.State) ([]byte, error) {
	doc := make(map[string]any, len(base)+2)
	for k, v := range base {
		doc[k] = v
	}
	if doc["_format_version"] == nil {
		doc["_format_version"] = "3.0"
	}
	services := unmanaged(base["services"])
	for _, s := range st.Services {
		services = append(services, s)
	}
	upstreams := unmanaged(base["upstreams"])
	for _, u := range st.Upstreams {
		upstreams = append(upstreams, u)
	}
	doc["services"] = services
	doc["upstreams"] = upstreams
	if p, ok := base["plugins"]; ok {
		doc["plugins"] = unmanaged(p)
	}
	if r, ok := base["routes"]; ok {
		doc["routes"] = unmanaged(r)
	}
	b, err := json.Marshal(doc)
	if err != nil {
		return nil, fmt.Errorf("encoding declarative config: %w", err)
	}
	return b, nil
}

func unmanaged(v any) []any {
	list, _ := v.([]any)
	out := make([]any, 0, len(list))
	for _, e := range list {
		if m, ok := e.(map[string]any); ok && hasTag(mapTags(m), translator.TagManaged) {
			continue
		}
		out = append(out, e)
	}
	return out
}

// mapTags reads the tags of an entity of a declarative config.
func mapTags(m map[string]any) []string {
	list, _ := m["tags"].([]any)
	out := make([]string, 0, len(list))
	for _, t := range list {
		if s, ok := t.(string); ok {
			out = append(out, s)
		}
	}
	return out
}

type kongStatus struct {
	ConfigurationHash string `json:"configuration_hash"`
}

func (d *dblessSync) apply(ctx context.Context, st translator.State, full bool) (Result, error) {
	body, err := BuildDeclarative(d.base, st)
	if err != nil {
		return Result{}, err
	}
	sum := sha256.Sum256(body)
	// After a registry change that does not change the config (a heartbeat),
	// Kong is not even asked; full reconciles check its hash.
	if !full && sum == d.lastBody && d.lastHash != "" {
		return Result{Unchanged: len(st.Services), Refused: d.lastRefused}, nil
	}
	var status kongStatus
	if err := d.c.do(ctx, http.MethodGet, "/status", nil, nil, &status); err != nil {
		return Result{}, err
	}
	// Kong restarted (empty hash) or someone else pushed: Kong's hash moved.
	if sum == d.lastBody && d.lastHash != "" && status.ConfigurationHash == d.lastHash {
		return Result{Unchanged: len(st.Services), Refused: d.lastRefused}, nil
	}
	res := Result{Pushed: true, Updated: len(st.Services)}
	if err := d.push(ctx, body); err != nil {
		// Kong refused the config. If the entities it names are registry
		// routes', push without those routes so one bad route does not keep
		// every other change out of Kong; the refused ones are reported.
		bad := refusedRoutes(err)
		if len(bad) == 0 {
			return Result{}, err
		}
		kept, dropped := withoutRoutes(st, bad)
		if len(dropped) == 0 {
			return Result{}, err
		}
		body2, berr := BuildDeclarative(d.base, kept)
		if berr != nil {
			return Result{}, berr
		}
		if err2 := d.push(ctx, body2); err2 != nil {
			return Result{}, fmt.Errorf("%w (and again without the %d routes kong refused: %w)", err, len(dropped), err2)
		}
		res.Updated, res.Refused = len(kept.Services), dropped
	}
	d.lastBody, d.lastRefused = sum, res.Refused
	if err := d.c.do(ctx, http.MethodGet, "/status", nil, nil, &status); err != nil {
		d.lastHash = ""
		return res, nil
	}
	d.lastHash = status.ConfigurationHash
	return res, nil
}

// refusedRoutes reads Kong's flattened_errors (POST /config?flatten_errors=1)
// and returns the sr-host/sr-path tag pairs of the refused entities, each
// with Kong's first message about it.
func refusedRoutes(err error) map[string]string {
	var apiErr *kong.APIError
	if !errors.As(err, &apiErr) || apiErr.Code() != http.StatusBadRequest {
		return nil
	}
	var body struct {
		Flattened []struct {
			Tags   []string `json:"entity_tags"`
			Type   string   `json:"entity_type"`
			Errors []struct {
				Field   string `json:"field"`
				Message string `json:"message"`
			} `json:"errors"`
		} `json:"flattened_errors"`
	}
	if json.Unmarshal(apiErr.Raw(), &body) != nil {
		return nil
	}
	out := map[string]string{}
	for _, f := range body.Flattened {
		if pair := tagPair(f.Tags); pair != "|" && hasTag(f.Tags, translator.TagManaged) {
			msg := f.Type + " refused"
			if len(f.Errors) > 0 {
				msg = f.Type + ": " + strings.TrimPrefix(f.Errors[0].Field+": ", ": ") + f.Errors[0].Message
			}
			if out[pair] == "" {
				out[pair] = msg
			}
		} else {
			// Something of the operator's base config: nothing to drop.
			return nil
		}
	}
	return out
}

// withoutRoutes drops the entities of the routes whose tag pairs are in bad.
func withoutRoutes(st translator.State, bad map[string]string) (translator.State, []Refusal) {
	out := translator.State{Errors: st.Errors}
	var dropped []Refusal
	for _, s := range st.Services {
		pair := tagPair(s.Tags)
		if msg, ok := bad[pair]; ok {
			dropped = append(dropped, Refusal{Kind: kindService.String(), Name: s.Name, Route: pair, Message: msg})
			continue
		}
		out.Services = append(out.Services, s)
	}
	for _, u := range st.Upstreams {
		if _, ok := bad[tagPair(u.Tags)]; !ok {
			out.Upstreams = append(out.Upstreams, u)
		}
	}
	return out, dropped
}

func (d *dblessSync) push(ctx context.Context, body []byte) error {
	err := d.c.retry(ctx, func() error {
		return d.c.kc.ReloadDeclarativeRawConfig(ctx, bytes.NewReader(body), false, true)
	})
	if err != nil {
		return fmt.Errorf("kong POST /config: %w", err)
	}
	return nil
}
