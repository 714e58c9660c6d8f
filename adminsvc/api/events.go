package api

import (
	"context"
	"errors"
	"sync"

	"github.com/kong-service-registry/service-registry/internal/registry"
)

// errTooManyStreams is answered 503 past the event stream cap.
var errTooManyStreams = errors.New("too many event streams")

// subscriberBuffer is how far one event stream may lag behind the feed
// before it is dropped (the client reconnects and re-reads state).
const subscriberBuffer = 64

// hub shares one registry change feed (one Redis pub/sub connection) among
// every /v1/events client of this process, and caps how many there are.
// The feed is opened with the first stream and closed with the last.
type hub struct {
	store *registry.Store
	base  context.Context // ends at server shutdown
	max   int

	mu     sync.Mutex
	subs   map[chan registry.Change]struct{}
	cancel context.CancelFunc // of the open feed; nil when none
	gen    int                // bumped per feed, so a stale feed touches nothing
}

func newHub(base context.Context, store *registry.Store, max int) *hub {
	return &hub{store: store, base: base, max: max, subs: map[chan registry.Change]struct{}{}}
}

// subscribe returns a channel of changes, closed when the stream must end
// (feed lost, subscriber too slow, shutdown), and the function that ends
// the subscription. Opening the feed may fail: registry.ErrUnavailable.
func (h *hub) subscribe() (<-chan registry.Change, func(), error) {
	h.mu.Lock()
	defer h.mu.Unlock()
	if len(h.subs) >= h.max {
		return nil, nil, errTooManyStreams
	}
	if h.cancel == nil {
		ctx, cancel := context.WithCancel(h.base)
		feed, err := h.store.Watch(ctx)
		if err != nil {
			cancel()
			return nil, nil, err
		}
		h.gen++
		h.cancel = cancel
		go h.run(feed, h.gen)
	}
	sub := make(chan registry.Change, subscriberBuffer)
	h.subs[sub] = struct{}{}
	return sub, func() { h.unsubscribe(sub) }, nil
}

func (h *hub) unsubscribe(sub chan registry.Change) {
	h.mu.Lock()
	defer h.mu.Unlock()
	if _, ok := h.subs[sub]; ok {
		delete(h.subs, sub)
		close(sub)
	}
	if len(h.subs) == 0 && h.cancel != nil {
		h.cancel() // ends run's feed
		h.cancel = nil
	}
}

// run fans the feed out until it closes (its context ended or Redis went
// away), then ends every stream of that feed so clients reconnect.
func (h *hub) run(feed <-chan registry.Change, gen int) {
	for c := range feed {
		h.mu.Lock()
		if h.gen == gen {
			for sub := range h.subs {
				select {
				case sub <- c:
				default:
					// Too slow: never block the other streams on it.
					delete(h.subs, sub)
					close(sub)
				}
			}
		}
		h.mu.Unlock()
	}
	h.mu.Lock()
	defer h.mu.Unlock()
	if h.gen != gen {
		return
	}
	for sub := range h.subs {
		delete(h.subs, sub)
		close(sub)
	}
	if h.cancel != nil {
		h.cancel()
		h.cancel = nil
	}
}

// streams is the number of open event streams.
func (h *hub) streams() int {
	h.mu.Lock()
	defer h.mu.Unlock()
	return len(h.subs)
}
