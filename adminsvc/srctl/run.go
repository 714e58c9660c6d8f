package main

import (
	"context"
	"fmt"
	"os"
	"os/signal"
	"syscall"
	"time"

	"github.com/kong-service-registry/service-registry/adminsvc/client"
)

// cmdRun keeps a service registered until SIGTERM/SIGINT: the registrar
// sidecar and the systemd "simple" unit form of self-registration. Only
// --timeout does not apply: the run lasts until the signal, and each
// registration call is bounded by the client's retries and attempt timeout.
func (a *app) cmdRun(ctx context.Context, args []string) error {
	var rf routeFlags
	fs := a.newFlags("run")
	rf.register(fs, true)
	service := fs.String("service", "", "/v1 service of the instance (default: the service of each route)")
	id := fs.String("id", "", "instance id (default: the instance's address)")
	address := fs.String("address", "", "instance host:port")
	ttl := fs.Int("ttl", 0, "lease in seconds (renewed every ttl/3); 0 = no lease")
	weight := fs.Int("weight", -1, "instance weight (default: the registry's)")
	keepRoutes := fs.Bool("keep-routes", false, "leave the routes registered on exit (a route shared by replicas)")
	if err := a.parse(fs, args); err != nil {
		return err
	}
	var p plan
	if rf.config != "" || rf.host != "" || rf.path != "" || (*address == "" && os.Getenv("SERVICE_CONFIG_FILE") != "") {
		var err error
		if p, err = a.plan(&rf, true); err != nil {
			return err
		}
	}
	if *address != "" {
		if *service == "" && len(p.Routes) == 0 {
			return usagef("run --address needs --service or a route (--host --path --backend)")
		}
		p.Service, p.InstanceID = *service, *id
		p.Instance = &client.InstanceSpec{Address: *address}
	}
	if p.Instance != nil {
		if *ttl > 0 {
			p.Instance.TTLSeconds = *ttl
		}
		if *weight >= 0 {
			p.Instance.Weight = client.Int(*weight)
		}
	}
	if len(p.Routes) == 0 && p.Instance == nil {
		return usagef("run needs --config, --host/--path/--backend or --service/--address")
	}
	c, err := a.client()
	if err != nil {
		return err
	}
	r := &client.Registrar{
		Client:            c,
		Routes:            p.Routes,
		KeepRoutes:        *keepRoutes,
		Service:           p.Service,
		InstanceID:        p.InstanceID,
		Instance:          p.Instance,
		DeregisterTimeout: 10 * time.Second,
		Logger:            a.newLogger(),
		OnRegistered: func() {
			if a.g.json {
				a.printJSON(map[string]any{"status": "registered", "routes": len(p.Routes), "instance": firstNonEmpty(p.InstanceID, *address)})
			} else {
				a.printf("registered; waiting for SIGTERM\n")
			}
		},
	}
	ctx, stop := signal.NotifyContext(ctx, os.Interrupt, syscall.SIGTERM)
	defer stop()
	if err := r.Run(ctx); err != nil {
		return fmt.Errorf("run: %w", err)
	}
	if !a.g.json {
		a.printf("deregistered\n")
	}
	return nil
}
