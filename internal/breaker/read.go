package breaker

import (
	"context"
	"fmt"
	"strconv"

	"github.com/redis/go-redis/v9"
)

// Key is the Redis key of one instance's shared breaker state: the hash the
// sync script keeps (see syncScript). Readers outside the plugin (adminsvc's
// health view) must use it, or ReadStates, rather than spell the key.
func Key(prefix, scope, addr string) string {
	if prefix == "" {
		prefix = "sr"
	}
	return prefix + ":v1:{cb:" + scope + "|" + addr + "}"
}

func (b *Breakers) redisKey(addr string) string { return Key(b.o.Prefix, b.o.Scope, addr) }

// ReadStates returns the cluster-wide state of each instance address of one
// breaker set (prefix and scope as in Options), read in one pipelined round
// trip with Redis TIME, the clock the sync script judges by: an open period
// that has ended reads HalfOpen, as the next sync would make it. An address
// nobody recorded reads Closed.
func ReadStates(ctx context.Context, rdb Client, prefix, scope string, addrs []string) ([]State, error) {
	p := rdb.Pipeline()
	clock := p.Time(ctx)
	cmds := make([]*redis.SliceCmd, len(addrs))
	for i, a := range addrs {
		cmds[i] = p.HMGet(ctx, Key(prefix, scope, a), "st", "until")
	}
	if _, err := p.Exec(ctx); err != nil {
		return nil, fmt.Errorf("breaker: reading states: %w", err)
	}
	now := clock.Val().UnixMilli()
	out := make([]State, len(addrs))
	for i, c := range cmds {
		vals := c.Val()
		st, _ := vals[0].(string)
		if st != "1" {
			continue // closed, or never recorded
		}
		until, _ := vals[1].(string)
		end, _ := strconv.ParseInt(until, 10, 64)
		out[i] = Open
		if now >= end {
			out[i] = HalfOpen
		}
	}
	return out, nil
}
