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

	// Service, InstanceID and Instance describe a /v1 instance. With
	// Instance.TTLSeconds > 0 it is a lease that the Registrar renews.
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
	if r.Instance != nil && (r.Service == "" || r.InstanceID == "") {
		return errors.New("registrar: instance needs service and instance id")
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
		if _, err := r.Client.PutInstance(ctx, r.Service, r.InstanceID, *r.Instance); err != nil {
			r.cleanup(ctx, done, false)
			return fmt.Errorf("registering instance %s/%s: %w", r.Service, r.InstanceID, err)
		}
		log.Info("registered instance", "service", r.Service, "id", r.InstanceID, "address", r.Instance.Address)
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
	log := r.logger()
	t := time.NewTicker(every)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
		err := r.Client.Heartbeat(ctx, r.Service, r.InstanceID)
		switch {
		case err == nil, ctx.Err() != nil:
		case errors.Is(err, ErrNotFound):
			log.Warn("lease lost, registering the instance again", "service", r.Service, "id", r.InstanceID)
			if _, err := r.Client.PutInstance(ctx, r.Service, r.InstanceID, *r.Instance); err != nil && ctx.Err() == nil {
				log.Error("re-registering instance", "service", r.Service, "id", r.InstanceID, "err", err)
			}
		default:
			log.Error("heartbeat", "service", r.Service, "id", r.InstanceID, "err", err)
		}
	}
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
		err := r.Client.DeleteInstance(dctx, r.Service, r.InstanceID)
		if err != nil && !errors.Is(err, ErrNotFound) {
			errs = append(errs, fmt.Errorf("deregistering instance %s/%s: %w", r.Service, r.InstanceID, err))
		} else {
			log.Info("deregistered instance", "service", r.Service, "id", r.InstanceID)
		}
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
