package registry

import (
	"context"
	"strconv"
	"strings"
)

// Watch subscribes to the change feed. The channel closes when ctx ends.
// Pub/sub drops messages while reconnecting: readers must also poll
// versions (the discovery cache does).
func (s *Store) Watch(ctx context.Context) (<-chan Change, error) {
	ps := s.rdb.Subscribe(ctx, s.keys.channel())
	if _, err := ps.Receive(ctx); err != nil {
		_ = ps.Close()
		return nil, unavailable("watch", err)
	}
	out := make(chan Change, 256)
	msgs := ps.Channel()
	go func() {
		defer close(out)
		defer ps.Close()
		for {
			select {
			case <-ctx.Done():
				return
			case m, ok := <-msgs:
				if !ok {
					return
				}
				c, ok := ParseChange(m.Payload)
				if !ok {
					continue
				}
				select {
				case out <- c:
				case <-ctx.Done():
					return
				}
			}
		}
	}()
	return out, nil
}

// ParseChange decodes a change-feed payload "<version> <service>".
func ParseChange(payload string) (Change, bool) {
	v, name, ok := strings.Cut(payload, " ")
	if !ok || name == "" {
		return Change{}, false
	}
	n, err := strconv.ParseInt(v, 10, 64)
	if err != nil {
		return Change{}, false
	}
	return Change{Service: name, Version: n}, true
}
