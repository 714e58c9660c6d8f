package registry

import (
	"context"
	"log/slog"
	"time"
)

// RunExpiry removes ended instance leases (ExpireInstances) every interval
// until ctx ends. Expiry is the registry's own job: readers already skip an
// ended lease (Instance.Expired); this removes it, bumping the service
// version so watchers (the Kong sync among them) see the change. When active
// is set, a pass runs only while it returns true, so that of several
// replicas only one scans (adminsvc: the Kong sync leader); running it on
// more is safe, only wasteful.
func (s *Store) RunExpiry(ctx context.Context, interval time.Duration, active func() bool, log *slog.Logger) {
	if interval <= 0 {
		interval = time.Second
	}
	if log == nil {
		log = slog.Default()
	}
	tick := time.NewTicker(interval)
	defer tick.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-tick.C:
		}
		if active != nil && !active() {
			continue
		}
		ectx, cancel := context.WithTimeout(ctx, max(5*interval, 5*time.Second))
		n, err := s.ExpireInstances(ectx)
		cancel()
		switch {
		case err != nil && ctx.Err() == nil:
			log.Warn("expiring instance leases failed", "error", err)
		case n > 0:
			log.Info("instance leases expired", "count", n)
		}
	}
}
