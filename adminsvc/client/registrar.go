package client

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"os/signal"
	"syscall"
	"time"
)

// Registrar keeps one process registered for as long as it runs: it
// registers its routes and its instance on start, renews the instance's
// lease while running, and deregisters both when its context ends (SIGTERM,
// SIGINT with RunUntilSignal).
//
// Set Routes, an Instance, or both.
type Registrar struct {
	Client *Client
	// Routes are go-proxy registrations made on start and removed on stop.
	Routes []Registration
	// KeepRoutes leaves Routes registered on stop: for a route several
	// replicas share, removing it when one replica stops would cut the others.
	KeepRoutes bool

	// Instance is a /v1 instance, put under Service, or when Service is
	// empty under the service of every route in Routes (RouteService): that
	// is how several replicas share one go-proxy route. InstanceID defaults
	// to the instance's address. With Instance.TTLSeconds > 0 it is a lease
	// that the Registrar renews.
	Service    string
	InstanceID string
	Instance   *InstanceSpec

	// HeartbeatInterval defaults to a third of the TTL (at least 100ms), so
	// two heartbeats may be lost before the lease runs out.
	HeartbeatInterval time.Duration
	// DeregisterTimeout bounds the deregistration on stop [10s].
	DeregisterTimeout time.Duration
	Logger            *slog.Logger

	// OnRegistered, when set, is called once everything is registered.
	OnRegistered func()
}

func (r *Registrar) logger() *slog.Logger {
	if r.Logger != nil {
		return r.Logger
	}
	return slog.Default()
}

// RunUntilSignal is Run until ctx ends or the process gets SIGTERM or
// SIGINT; then it deregisters and returns.
func (r *Registrar) RunUntilSignal(ctx context.Context) error {
	ctx, stop := signal.NotifyContext(ctx, os.Interrupt, syscall.SIGTERM)
	defer stop()
	return r.Run(ctx)
}

// Run registers, keeps the lease alive until ctx ends, then deregisters with
// a fresh, bounded context. A registration that fails (after the client's
// retries) is returned at once, after undoing what was already registered.
func (r *Registrar) Run(ctx context.Context) error {
	if r.Client == nil {
		return errors.New("registrar: no client")
	}
	if len(r.Routes) == 0 && r.Instance == nil {
		return errors.New("registrar: nothing to register")
	}
	services := r.services()
	if r.Instance != nil && len(services) == 0 {
		return errors.New("registrar: an instance needs a service or routes")
	}
	id := r.instanceID()
	if r.Instance != nil && id == "" {
		return errors.New("registrar: an instance needs an id or an address")
	}
	log := r.logger()

	var done []Registration
	for _, reg := range r.Routes {
		if _, err := r.Client.Register(ctx, reg); err != nil {
			r.cleanup(ctx, done, false)
			return fmt.Errorf("registering %s%s: %w", reg.Host, reg.Path, err)
		}
		log.Info("registered route", "host", reg.Host, "path", reg.Path, "backend", reg.Backend)
		done = append(done, reg)
	}
	if r.Instance != nil {
		for i, svc := range services {
			if _, err := r.Client.PutInstance(ctx, svc, id, *r.Instance); err != nil {
				r.cleanupInstances(ctx, services[:i])
				r.cleanup(ctx, done, false)
				return fmt.Errorf("registering instance %s/%s: %w", svc, id, err)
			}
			log.Info("registered instance", "service", svc, "id", id, "address", r.Instance.Address)
		}
	}
	if r.OnRegistered != nil {
		r.OnRegistered()
	}

	if r.Instance != nil && r.Instance.TTLSeconds > 0 {
		r.heartbeat(ctx)
	} else {
		<-ctx.Done()
	}
	return r.cleanup(ctx, done, r.Instance != nil)
}

// heartbeat renews the lease until ctx ends. A lost lease (404: it expired
// while the registry was unreachable) is put again rather than given up.
func (r *Registrar) heartbeat(ctx context.Context) {
	every := r.HeartbeatInterval
	if every <= 0 {
		every = time.Duration(r.Instance.TTLSeconds) * time.Second / 3
	}
	if every < 100*time.Millisecond {
		every = 100 * time.Millisecond
	}
	t := time.NewTicker(every)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
		for _, svc := range r.services() {
			r.renew(ctx, svc)
		}
	}
}

// renew renews one lease; a lost one is put again.
func (r *Registrar) renew(ctx context.Context, svc string) {
	log := r.logger()
	id := r.instanceID()
	err := r.Client.Heartbeat(ctx, svc, id)
	switch {
	case err == nil, ctx.Err() != nil:
	case errors.Is(err, ErrNotFound):
		log.Warn("lease lost, registering the instance again", "service", svc, "id", id)
		if _, err := r.Client.PutInstance(ctx, svc, id, *r.Instance); err != nil && ctx.Err() == nil {
			log.Error("re-registering instance", "service", svc, "id", id, "err", err)
		}
	default:
		log.Error("heartbeat", "service", svc, "id", id, "err", err)
	}
}

// services are where the instance is registered.
func (r *Registrar) services() []string {
	if r.Service != "" {
		return []string{r.Service}
	}
	var out []string
	seen := map[string]bool{}
	for _, reg := range r.Routes {
		name := RouteService(reg.Host, reg.Path)
		if !seen[name] {
			seen[name] = true
			out = append(out, name)
		}
	}
	return out
}

func (r *Registrar) instanceID() string {
	if r.InstanceID != "" {
		return r.InstanceID
	}
	if r.Instance != nil {
		return r.Instance.Address
	}
	return ""
}

// cleanupInstances removes the instance from the given services.
func (r *Registrar) cleanupInstances(ctx context.Context, services []string) []error {
	timeout := r.DeregisterTimeout
	if timeout <= 0 {
		timeout = 10 * time.Second
	}
	dctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), timeout)
	defer cancel()
	var errs []error
	id := r.instanceID()
	for _, svc := range services {
		err := r.Client.DeleteInstance(dctx, svc, id)
		if err != nil && !errors.Is(err, ErrNotFound) {
			errs = append(errs, fmt.Errorf("deregistering instance %s/%s: %w", svc, id, err))
			continue
		}
		r.logger().Info("deregistered instance", "service", svc, "id", id)
	}
	return errs
}

// cleanup deregisters on a context that outlives ctx: the reason to
// deregister is usually that ctx was just cancelled.
func (r *Registrar) cleanup(ctx context.Context, routes []Registration, instance bool) error {
	timeout := r.DeregisterTimeout
	if timeout <= 0 {
		timeout = 10 * time.Second
	}
	dctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), timeout)
	defer cancel()
	log := r.logger()
	var errs []error
	if instance {
		errs = append(errs, r.cleanupInstances(ctx, r.services())...)
	}
	if !r.KeepRoutes {
		for _, reg := range routes {
			_, err := r.Client.Deregister(dctx, reg.Host, reg.Path)
			if err != nil && !errors.Is(err, ErrNotFound) {
				errs = append(errs, fmt.Errorf("deregistering %s%s: %w", reg.Host, reg.Path, err))
				continue
			}
			log.Info("deregistered route", "host", reg.Host, "path", reg.Path)
		}
	}
	return errors.Join(errs...)
}
