package kongsync

import (
	"context"
	"errors"
	"fmt"
	"strconv"
	"time"

	"github.com/redis/go-redis/v9"
)

// lease elects the one replica that writes Kong. The holder's value carries
// a fencing token (a counter bumped on every acquisition); every state write
// the holder makes (the applied generation) checks the value, so a replica
// that lost the lease while paused cannot overwrite a newer holder's state.
type lease struct {
	rdb   redis.UniversalClient
	key   string // value: "<replica>/<token>"
	fence string // counter
	gen   string // applied generation
	ttl   time.Duration
	id    string
	value string // current value when held, "" otherwise
}

func newLease(rdb redis.UniversalClient, prefix, replica string, ttl time.Duration) *lease {
	// One hash tag so the scripts work on Redis Cluster.
	base := prefix + ":v1:{_kongsync}:"
	return &lease{rdb: rdb, key: base + "lease", fence: base + "fence", gen: base + "applied", ttl: ttl, id: replica}
}

var acquireScript = redis.NewScript(`
local cur = redis.call('GET', KEYS[1])
if cur and cur == ARGV[2] then
  redis.call('PEXPIRE', KEYS[1], ARGV[1])
  return cur
end
-- The same replica restarted (its name is stable, e.g. a pod name): its
-- previous life cannot still be writing, so it takes over at once.
if cur and string.sub(cur, 1, string.len(ARGV[3]) + 1) ~= ARGV[3] .. '/' then return false end
local token = redis.call('INCR', KEYS[2])
local v = ARGV[3] .. '/' .. token
redis.call('SET', KEYS[1], v, 'PX', ARGV[1])
return v
`)

// hold acquires or renews the lease; it reports whether this replica holds it.
func (l *lease) hold(ctx context.Context) (bool, error) {
	v, err := acquireScript.Run(ctx, l.rdb, []string{l.key, l.fence},
		l.ttl.Milliseconds(), l.value, l.id).Text()
	if errors.Is(err, redis.Nil) {
		l.value = ""
		return false, nil
	}
	if err != nil {
		return false, fmt.Errorf("kong sync lease: %w", err)
	}
	l.value = v
	return true, nil
}

var releaseScript = redis.NewScript(`
if redis.call('GET', KEYS[1]) == ARGV[1] then return redis.call('DEL', KEYS[1]) end
return 0
`)

func (l *lease) release(ctx context.Context) {
	if l.value == "" {
		return
	}
	_ = releaseScript.Run(ctx, l.rdb, []string{l.key}, l.value).Err()
	l.value = ""
}

var recordScript = redis.NewScript(`
if redis.call('GET', KEYS[1]) ~= ARGV[1] then return -1 end
local cur = tonumber(redis.call('GET', KEYS[2]) or '0')
if tonumber(ARGV[2]) > cur then redis.call('SET', KEYS[2], ARGV[2]) end
return 1
`)

// recordApplied stores the registry generation Kong now reflects, fenced by
// the lease value.
func (l *lease) recordApplied(ctx context.Context, gen int64) error {
	n, err := recordScript.Run(ctx, l.rdb, []string{l.key, l.gen}, l.value, gen).Int()
	if err != nil {
		return fmt.Errorf("recording applied generation: %w", err)
	}
	if n < 0 {
		l.value = ""
		return errNotLeader
	}
	return nil
}

func (l *lease) applied(ctx context.Context) (int64, error) {
	s, err := l.rdb.Get(ctx, l.gen).Result()
	if errors.Is(err, redis.Nil) {
		return 0, nil
	}
	if err != nil {
		return 0, fmt.Errorf("reading applied generation: %w", err)
	}
	return strconv.ParseInt(s, 10, 64)
}
