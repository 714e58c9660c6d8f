package registry

import (
	"context"
	"strconv"
	"strings"

	"github.com/redis/go-redis/v9"
)

// Watch subscribes to the change feed. The channel closes when ctx ends, or
// when go-redis resubscribed after losing the connection (messages were
// lost in between).
// Pub/sub drops messages while reconnecting: readers must also poll
// versions (the discovery cache does).
func (s *Store) Watch(ctx context.Context) (<-chan Change, error) {
	ps := s.rdb.Subscribe(ctx, s.keys.channel())
	if _, err := ps.Receive(ctx); err != nil {
		_ = ps.Close()
		return nil, unavailable("watch", err)
	}
	out := make(chan Change, 256)
	// With subscription messages: go-redis resubscribes by itself after a
	// lost connection and says so only with a new "subscribe" confirmation
	// (the first one was read by Receive above). Messages published while
	// the subscription was down are lost, so the channel is closed then: the
	// reader subscribes afresh and re-checks what it caches (discovery's
	// feed loop does), instead of trusting a feed with a hole in it.
	msgs := ps.ChannelWithSubscriptions()
	go func() {
		defer close(out)
		defer ps.Close()
		for {
			select {
			case <-ctx.Done():
				return
			case msg, ok := <-msgs:
				if !ok {
					return
				}
				m, isMsg := msg.(*redis.Message)
				if !isMsg {
					if sub, _ := msg.(*redis.Subscription); sub != nil && sub.Kind == "subscribe" {
						return // resubscribed after a loss: see above
					}
					continue
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
