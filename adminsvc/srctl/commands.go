package main

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"os"
	"strings"

	"github.com/kong-service-registry/service-registry/adminsvc/client"
)

// routeFlags are the flags that describe routes: either --config FILE or
// --host/--path(/--backend).
type routeFlags struct {
	config, host, path, backend string
	optTimeout, optsJSON        string
	healthPath                  string
	websocket, perIP            bool
	rateLimit                   int
	headers                     headerFlag
}

func (r *routeFlags) register(fs *flag.FlagSet, withOptions bool) {
	fs.StringVar(&r.config, "config", "", "Microkubes-style JSON service config (env SERVICE_CONFIG_FILE)")
	fs.StringVar(&r.host, "host", "", "route host (e.g. api.example.com)")
	fs.StringVar(&r.path, "path", "", "route path (e.g. /v2)")
	if !withOptions {
		return
	}
	fs.StringVar(&r.backend, "backend", "", "backend URL (e.g. http://api-v2:9000)")
	fs.StringVar(&r.optTimeout, "route-timeout", "", "options.timeout, e.g. 60s")
	fs.BoolVar(&r.websocket, "websocket", false, "options.websocket")
	fs.IntVar(&r.rateLimit, "rate-limit", 0, "options.rate_limit.requests_per_min (enables it)")
	fs.BoolVar(&r.perIP, "per-ip", false, "options.rate_limit.per_ip")
	fs.StringVar(&r.healthPath, "health-check-path", "", "options.health_check_path")
	r.headers = headerFlag{}
	fs.Var(r.headers, "header", "options.headers entry Name=Value (repeatable)")
	fs.StringVar(&r.optsJSON, "options", "", "options as a JSON object (flags above override its fields)")
}

// plan turns the flags into registrations.
func (a *app) plan(r *routeFlags, needBackend bool) (plan, error) {
	cfg := r.config
	if cfg == "" && r.host == "" && r.path == "" {
		cfg = os.Getenv("SERVICE_CONFIG_FILE")
	}
	if cfg != "" {
		if r.host != "" || r.path != "" || r.backend != "" {
			return plan{}, usagef("use either --config or --host/--path/--backend")
		}
		f, err := loadServiceFile(cfg)
		if err != nil {
			return plan{}, usageError{err.Error()}
		}
		p, err := planFor(f)
		if err != nil {
			return plan{}, usageError{err.Error()}
		}
		if !a.registrySet {
			a.registryFromFile = p.Registry
		}
		return p, nil
	}
	if r.host == "" || r.path == "" || (needBackend && r.backend == "") {
		if needBackend {
			return plan{}, usagef("need --host, --path and --backend (or --config FILE)")
		}
		return plan{}, usagef("need --host and --path (or --config FILE)")
	}
	reg := client.Registration{Host: r.host, Path: r.path, Backend: r.backend}
	opts, err := r.options()
	if err != nil {
		return plan{}, err
	}
	reg.Options = opts
	return plan{Routes: []client.Registration{reg}}, nil
}

func (r *routeFlags) options() (*client.RouteOptions, error) {
	var o client.RouteOptions
	set := false
	if r.optsJSON != "" {
		if err := json.Unmarshal([]byte(r.optsJSON), &o); err != nil {
			return nil, usagef("--options: %v", err)
		}
		set = true
	}
	if r.optTimeout != "" {
		o.Timeout, set = r.optTimeout, true
	}
	if r.websocket {
		o.Websocket, set = true, true
	}
	if r.rateLimit > 0 {
		o.RateLimit, set = &client.RateLimit{Enabled: true, RequestsPerMin: r.rateLimit, PerIP: r.perIP}, true
	}
	if r.healthPath != "" {
		o.HealthCheckPath, set = r.healthPath, true
	}
	if len(r.headers) > 0 {
		if o.Headers == nil {
			o.Headers = map[string]string{}
		}
		for k, v := range r.headers {
			o.Headers[k] = v
		}
		set = true
	}
	if !set {
		return nil, nil
	}
	return &o, nil
}

// parsePlan parses a route command's flags, plans its calls and opens the
// client: the first steps of register and deregister.
func (a *app) parsePlan(fs *flag.FlagSet, rf *routeFlags, args []string, needBackend bool) (plan, *client.Client, error) {
	if err := a.parse(fs, args); err != nil {
		return plan{}, nil, err
	}
	p, err := a.plan(rf, needBackend)
	if err != nil {
		return plan{}, nil, err
	}
	c, err := a.client()
	if err != nil {
		return plan{}, nil, err
	}
	return p, c, nil
}

func (a *app) cmdRegister(ctx context.Context, args []string) error {
	var rf routeFlags
	fs := a.newFlags("register")
	rf.register(fs, true)
	p, c, err := a.parsePlan(fs, &rf, args, true)
	if err != nil {
		return err
	}
	var results []any
	for _, reg := range p.Routes {
		res, err := c.Register(ctx, reg)
		if err != nil {
			return err
		}
		results = append(results, res)
		if !a.g.json {
			a.printf("registered %s%s -> %s\n", res.Host, res.Path, res.Backend)
		}
	}
	if p.Instance != nil {
		for _, svc := range p.instanceServices() {
			inst, err := c.PutInstance(ctx, svc, p.InstanceID, *p.Instance)
			if err != nil {
				return err
			}
			results = append(results, inst)
			if !a.g.json {
				a.printf("registered instance %s/%s at %s (weight %d)\n", svc, inst.ID, inst.Address, inst.Weight)
			}
		}
	}
	if a.g.json {
		a.printJSON(one(results))
	}
	return nil
}

// one prints a single answer as itself and several as a list, so that
// `srctl --json register --host ...` shows exactly the API's answer.
func one(results []any) any {
	if len(results) == 1 {
		return results[0]
	}
	return results
}

func (a *app) cmdDeregister(ctx context.Context, args []string) error {
	var rf routeFlags
	fs := a.newFlags("deregister")
	rf.register(fs, false)
	missingOK := fs.Bool("missing-ok", false, "exit 0 when the route is not registered")
	p, c, err := a.parsePlan(fs, &rf, args, false)
	if err != nil {
		return err
	}
	var results []any
	if p.Instance != nil {
		for _, svc := range p.instanceServices() {
			err := c.DeleteInstance(ctx, svc, p.InstanceID)
			// The route's own backend instance goes with the route below.
			if err != nil && !errors.Is(err, client.ErrNotFound) {
				return err
			}
			if !a.g.json {
				a.printf("deregistered instance %s/%s\n", svc, p.InstanceID)
			}
		}
	}
	for _, reg := range p.Routes {
		res, err := c.Deregister(ctx, reg.Host, reg.Path)
		if err != nil {
			if *missingOK && errors.Is(err, client.ErrNotFound) {
				res = client.DeregisterResult{Status: "not registered", Host: reg.Host, Path: reg.Path}
			} else {
				return err
			}
		}
		results = append(results, res)
		if !a.g.json {
			a.printf("%s %s%s\n", res.Status, res.Host, res.Path)
		}
	}
	if a.g.json {
		a.printJSON(one(results))
	}
	return nil
}

func (a *app) cmdRoutes(ctx context.Context, args []string) error {
	fs := a.newFlags("routes")
	if err := a.parse(fs, args); err != nil {
		return err
	}
	if fs.NArg() > 0 {
		return usagef("routes takes no arguments")
	}
	c, err := a.client()
	if err != nil {
		return err
	}
	list, err := c.Routes(ctx)
	if err != nil {
		return err
	}
	if a.g.json {
		a.printJSON(list)
		return nil
	}
	for _, r := range list.Routes {
		a.printf("%s%s -> %s (registered %s)\n", r.Host, r.Path, r.Backend, r.RegisteredAt.UTC().Format("2006-01-02T15:04:05Z"))
	}
	a.printf("total: %d\n", list.Total)
	return nil
}

func (a *app) cmdServices(ctx context.Context, args []string) error {
	fs := a.newFlags("services")
	tags := fs.String("tags", "", "only services carrying all these tags (comma separated)")
	if err := a.parse(fs, args); err != nil {
		return err
	}
	if fs.NArg() > 1 {
		return usagef("services takes at most one name")
	}
	c, err := a.client()
	if err != nil {
		return err
	}
	if fs.NArg() == 1 {
		s, err := c.Service(ctx, fs.Arg(0))
		if err != nil {
			return err
		}
		if a.g.json {
			a.printJSON(s)
			return nil
		}
		a.printService(s)
		return nil
	}
	var tagList []string
	if *tags != "" {
		tagList = strings.Split(*tags, ",")
	}
	list, err := c.Services(ctx, tagList...)
	if err != nil {
		return err
	}
	if a.g.json {
		if list == nil {
			list = []client.Service{}
		}
		a.printJSON(list)
		return nil
	}
	for _, s := range list {
		a.printService(s)
	}
	return nil
}

func (a *app) printService(s client.Service) {
	extra := ""
	if s.Maintenance.Enabled {
		extra = " [maintenance]"
	}
	a.printf("%s tags=%s instances=%d%s\n", s.Name, strings.Join(s.Tags, ","), len(s.Instances), extra)
	for _, in := range s.Instances {
		a.printf("  %s %s weight=%d\n", in.ID, in.Address, in.Weight)
	}
}

func (a *app) cmdInstance(ctx context.Context, args []string) error {
	if len(args) == 0 {
		return usagef("instance needs a subcommand: put, delete or weight")
	}
	sub, args := args[0], args[1:]
	fs := a.newFlags("instance " + sub)
	service := fs.String("service", "", "service name (or --host and --path: the route's service)")
	host := fs.String("host", "", "route host, instead of --service")
	path := fs.String("path", "", "route path, instead of --service")
	id := fs.String("id", "", "instance id")
	address := fs.String("address", "", "host:port (put)")
	weight := fs.Int("weight", -1, "weight 0..65535 (put: default the registry's; weight: required)")
	ttl := fs.Int("ttl", 0, "lease in seconds, renewed by heartbeat (put)")
	tags := fs.String("tags", "", "comma separated tags (put)")
	if err := a.parse(fs, args); err != nil {
		return err
	}
	if *service == "" && *host != "" && *path != "" {
		*service = client.RouteService(*host, *path)
	}
	if *id == "" {
		*id = *address
	}
	if *service == "" || *id == "" {
		return usagef("instance %s needs --service (or --host and --path) and --id (or --address)", sub)
	}
	c, err := a.client()
	if err != nil {
		return err
	}
	switch sub {
	case "put":
		if *address == "" {
			return usagef("instance put needs --address host:port")
		}
		spec := client.InstanceSpec{Address: *address, TTLSeconds: *ttl}
		if *weight >= 0 {
			spec.Weight = client.Int(*weight)
		}
		if *tags != "" {
			spec.Tags = strings.Split(*tags, ",")
		}
		inst, err := c.PutInstance(ctx, *service, *id, spec)
		if err != nil {
			return err
		}
		return a.instanceOut(inst, "put")
	case "weight":
		if *weight < 0 {
			return usagef("instance weight needs --weight N")
		}
		inst, err := c.PatchWeight(ctx, *service, *id, *weight)
		if err != nil {
			return err
		}
		return a.instanceOut(inst, "weight set")
	case "delete":
		if err := c.DeleteInstance(ctx, *service, *id); err != nil {
			return err
		}
		if a.g.json {
			a.printJSON(map[string]string{"status": "deleted", "service": *service, "id": *id})
		} else {
			a.printf("deleted instance %s/%s\n", *service, *id)
		}
		return nil
	}
	return usagef("unknown instance subcommand %q (put, delete, weight)", sub)
}

func (a *app) instanceOut(inst client.Instance, what string) error {
	if a.g.json {
		a.printJSON(inst)
		return nil
	}
	a.printf("%s: instance %s at %s weight=%d ttl_s=%d\n", what, inst.ID, inst.Address, inst.Weight, inst.TTLSeconds)
	return nil
}

func (a *app) cmdHeartbeat(ctx context.Context, args []string) error {
	fs := a.newFlags("heartbeat")
	service := fs.String("service", "", "service name")
	id := fs.String("id", "", "instance id")
	if err := a.parse(fs, args); err != nil {
		return err
	}
	if *service == "" || *id == "" {
		return usagef("heartbeat needs --service and --id")
	}
	c, err := a.client()
	if err != nil {
		return err
	}
	if err := c.Heartbeat(ctx, *service, *id); err != nil {
		return err
	}
	if a.g.json {
		a.printJSON(map[string]string{"status": "renewed", "service": *service, "id": *id})
	} else {
		a.printf("renewed %s/%s\n", *service, *id)
	}
	return nil
}

func (a *app) cmdMaintenance(ctx context.Context, args []string) error {
	fs := a.newFlags("maintenance")
	service := fs.String("service", "", "service name")
	off := fs.Bool("off", false, "leave maintenance mode (default: enter it)")
	message := fs.String("message", "", "message Kong answers with (503) while in maintenance")
	if err := a.parse(fs, args); err != nil {
		return err
	}
	if *service == "" {
		return usagef("maintenance needs --service")
	}
	c, err := a.client()
	if err != nil {
		return err
	}
	if err := c.SetMaintenance(ctx, *service, !*off, *message); err != nil {
		return err
	}
	if a.g.json {
		a.printJSON(map[string]any{"service": *service, "maintenance": client.Maintenance{Enabled: !*off, Message: *message}})
	} else {
		a.printf("%s maintenance=%v\n", *service, !*off)
	}
	return nil
}

func (a *app) cmdHealth(ctx context.Context, args []string) error {
	fs := a.newFlags("health")
	if err := a.parse(fs, args); err != nil {
		return err
	}
	c, err := a.client()
	if err != nil {
		return err
	}
	h, err := c.Health(ctx)
	var apiErr *client.APIError
	if err != nil && !(errors.As(err, &apiErr) && len(h.Raw) > 0) {
		return err
	}
	if a.g.json {
		a.printJSON(h.Raw)
	} else {
		a.printf("%s registered_routes=%d pending_changes=%d", h.Status, h.RegisteredRoutes, h.PendingChanges)
		if h.Error != "" {
			a.printf(" error=%q", h.Error)
		}
		if h.Kong != nil && h.Kong.LastError != "" {
			a.printf(" kong_error=%q", h.Kong.LastError)
		}
		a.printf("\n")
	}
	if h.Status != "healthy" {
		// The answer is already printed; only the exit code remains.
		return fmt.Errorf("%w: %s", errUnhealthy, firstNonEmpty(h.Error, h.Status))
	}
	return nil
}

func (a *app) cmdVersion(ctx context.Context, args []string) error {
	if a.g.json {
		a.printJSON(map[string]string{"version": version})
	} else {
		a.printf("srctl %s\n", version)
	}
	return nil
}
