package registry

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"strconv"
	"time"

	"github.com/redis/go-redis/v9"
)

func (s *Store) checkInstance(service string, in Instance) error {
	switch {
	case !validName(service):
		return invalidName(service)
	case in.ID == "":
		return invalid("id", "required")
	case in.Address == "":
		return invalid("address", "required")
	case in.Weight < 0 || in.Weight > MaxWeight:
		return invalid("weight", "%d outside 0..%d", in.Weight, MaxWeight)
	case in.TTLSeconds < 0:
		return invalid("ttl_s", "%d is negative", in.TTLSeconds)
	}
	if _, _, err := ValidateAddress(in.Address); err != nil {
		return invalid("address", "%v", err)
	}
	return nil
}

func expiryMillis(in Instance) int64 {
	if end := in.LeaseEnd(); !end.IsZero() {
		return end.UnixMilli()
	}
	return 0
}

// PutInstance creates or replaces an instance (and the service if missing).
func (s *Store) PutInstance(ctx context.Context, service string, in Instance) (Instance, error) {
	if err := s.checkInstance(service, in); err != nil {
		return Instance{}, err
	}
	now := s.now().UTC()
	in.UpdatedAt = now
	in.ExpiresAt = time.Time{}
	if in.TTLSeconds > 0 {
		in.ExpiresAt = now.Add(time.Duration(in.TTLSeconds) * time.Second)
	}
	js, _ := json.Marshal(in)
	// Journaled: this write may create the service (and its lease entry).
	res, token, err := s.runJournaled(ctx, "put instance", putInstanceScript, service, "", in.ID, js, expiryMillis(in))
	if err != nil {
		return Instance{}, err
	}
	if res.code != codeOK {
		s.dropToken(ctx, token)
		return Instance{}, codeErr(res.code)
	}
	return in, nil
}

// updateInstance applies change to one instance with compare-and-swap,
// retrying when a concurrent writer got there first.
func (s *Store) updateInstance(ctx context.Context, op, service, id string, change func(*Instance)) (Instance, error) {
	if err := invalidName(service); err != nil {
		return Instance{}, err
	}
	if id == "" {
		return Instance{}, invalid("id", "required")
	}
	key := s.keys.svc(service, "instances")
	for attempt := 0; attempt < 20; attempt++ {
		old, err := s.rdb.HGet(ctx, key, id).Result()
		if errors.Is(err, redis.Nil) {
			if _, err := s.GetService(ctx, service); err != nil {
				return Instance{}, err
			}
			return Instance{}, ErrInstanceNotFound
		}
		if err != nil {
			return Instance{}, unavailable(op, err)
		}
		var in Instance
		if err := json.Unmarshal([]byte(old), &in); err != nil {
			return Instance{}, fmt.Errorf("registry: %s: decoding instance: %w", op, err)
		}
		change(&in)
		if err := s.checkInstance(service, in); err != nil {
			return Instance{}, err
		}
		js, _ := json.Marshal(in)
		res, err := s.run(ctx, op, casInstanceScript, service, "", id, old, js, expiryMillis(in))
		if err != nil {
			return Instance{}, err
		}
		if res.code == codeConflict {
			continue
		}
		if res.code != codeOK {
			return Instance{}, codeErr(res.code)
		}
		return in, nil
	}
	return Instance{}, fmt.Errorf("registry: %s: too much contention on %s/%s", op, service, id)
}

// PatchInstance changes an instance's weight (blue-green, canary, drain).
func (s *Store) PatchInstance(ctx context.Context, service, id string, weight int) (Instance, error) {
	if weight < 0 || weight > MaxWeight {
		return Instance{}, invalid("weight", "%d outside 0..%d", weight, MaxWeight)
	}
	return s.updateInstance(ctx, "patch instance", service, id, func(in *Instance) {
		in.Weight = weight
		in.UpdatedAt = s.now().UTC()
	})
}

// Heartbeat renews an instance's lease for another TTLSeconds. An instance
// without a TTL is returned unchanged.
func (s *Store) Heartbeat(ctx context.Context, service, id string) (Instance, error) {
	return s.updateInstance(ctx, "heartbeat", service, id, func(in *Instance) {
		now := s.now().UTC()
		in.UpdatedAt = now
		if in.TTLSeconds > 0 {
			in.ExpiresAt = now.Add(time.Duration(in.TTLSeconds) * time.Second)
		}
	})
}

// DeleteInstance removes one instance; the service stays (possibly empty).
func (s *Store) DeleteInstance(ctx context.Context, service, id string) error {
	if err := invalidName(service); err != nil {
		return err
	}
	if id == "" {
		return invalid("id", "required")
	}
	res, err := s.run(ctx, "delete instance", deleteInstanceScript, service, "", id)
	if err != nil {
		return err
	}
	if res.code != codeOK {
		return codeErr(res.code)
	}
	return nil
}

// DeleteService removes a service (instances, leases, tags, maintenance)
// and its index entry: ErrServiceNotFound, or ErrServiceOfRoute for a
// registered route's service (DeregisterRoute removes that one).
func (s *Store) DeleteService(ctx context.Context, service string) error {
	if err := invalidName(service); err != nil {
		return err
	}
	res, err := s.run(ctx, "delete service", deleteServiceScript, service, "")
	if err != nil {
		return err
	}
	if res.code != codeOK {
		return codeErr(res.code)
	}
	return nil
}

// SetMaintenance turns maintenance mode on or off for a service.
func (s *Store) SetMaintenance(ctx context.Context, service string, m Maintenance) error {
	js, _ := json.Marshal(m)
	return s.setField(ctx, "set maintenance", service, "maintenance", js)
}

// SetServiceTags replaces a service's tags.
func (s *Store) SetServiceTags(ctx context.Context, service string, tags []string) error {
	if tags == nil {
		tags = []string{}
	}
	js, _ := json.Marshal(tags)
	return s.setField(ctx, "set tags", service, "tags", js)
}

func (s *Store) setField(ctx context.Context, op, service, field string, js []byte) error {
	if err := invalidName(service); err != nil {
		return err
	}
	res, err := s.run(ctx, op, setFieldScript, service, "", field, js)
	if err != nil {
		return err
	}
	if res.code != codeOK {
		return codeErr(res.code)
	}
	return nil
}

// ExpireInstances removes every lease that ended at or before Now, bumping
// the versions of the services it touches. It visits only the services the
// lease index says have a lease due, so a sweep with nothing due is one
// command.
func (s *Store) ExpireInstances(ctx context.Context) (int, error) {
	now := s.now().UnixMilli()
	var due *redis.StringSliceCmd
	err := s.readIndex(ctx, "expire instances", func(p redis.Pipeliner) {
		due = p.ZRangeByScore(ctx, s.keys.index("leases"), &redis.ZRangeBy{Min: "-inf", Max: strconv.FormatInt(now, 10)})
	})
	if err != nil {
		return 0, err
	}
	removed := 0
	for _, name := range due.Val() {
		res, err := s.run(ctx, "expire instances", expireScript, name, "", now)
		if err != nil {
			return removed, err
		}
		n, _ := strconv.Atoi(res.extra)
		removed += n
	}
	return removed, nil
}
