package breaker

import (
	"context"
	"crypto/sha1"
	"encoding/hex"
	"strconv"
	"strings"
	"time"

	"github.com/redis/go-redis/v9"
)

// syncScript merges one node's news about one instance into the cluster
// state and returns that state. One call per instance per sync, pipelined.
//
// KEYS[1]: the instance hash <prefix>:v1:{cb:<scope>|<addr>} with fields
// st (0 closed, 1 open), gen (open periods so far), until (ms, Redis time),
// trips, closed (ms), probes (claimed this half-open period), holders (the
// node id of each claim, comma-separated), consec, and a ring of 10 window
// buckets e<i>/c<i>/f<i> (epoch, calls, failures).
//
// ARGV: 1 calls, 2 failures since the last sync, 3 "1" if a success came
// (then 4 is the node's trailing consecutive failures, else they add up),
// 5 "1" node tripped, 6 "1" node's probe succeeded in period 7 (gen),
// 8 "1" node wants a probe token, 9 threshold, 10 ratio, 11 min calls,
// 12 window ms, 13 open ms, 14 max open ms, 15 half-open max calls, 16 ttl ms,
// 17 probe timeout ms, 18 node id, 19 claims the node holds (unused tokens
// plus probes whose outcome it waits for).
//
// Every sync of a half-open instance says how many claims the node holds
// (its syncs run one after another, so the reply of the last one has been
// applied), and claims the hash lists for it beyond that go back to the
// budget, whether the node wants a token or not: the reply that granted
// them never arrived (a sync that timed out after Redis ran it), their
// probe's outcome was lost, or the node gave an unused token back (its
// requests went elsewhere, see collect). Without that the claim would hold
// the budget, and every node would wait ProbeTimeout (60 s) for a probe
// nobody sends: an idle node cannot be relied on to ask again.
//
// Reply: {state 0/1/2 (2 = half-open), gen, ms until the open period ends,
// probe granted 0/1, trips}.
//
// Time is Redis TIME, so every node agrees on when an open period ends.
const syncScript = `
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
local k = KEYS[1]
local h = redis.call('HMGET', k, 'st', 'gen', 'until', 'trips', 'closed', 'probes', 'consec', 'holders')
local st = tonumber(h[1]) or 0
local gen = tonumber(h[2]) or 0
local untl = tonumber(h[3]) or 0
local trips = tonumber(h[4]) or 0
local closed = tonumber(h[5]) or 0
local probes = tonumber(h[6]) or 0
local consec = tonumber(h[7]) or 0
local holders = h[8] or ''
local node = ARGV[18] or ''
local dcalls, dfails = tonumber(ARGV[1]), tonumber(ARGV[2])
local threshold, ratio, mincalls = tonumber(ARGV[9]), tonumber(ARGV[10]), tonumber(ARGV[11])
local winms, openms, maxms, halfmax = tonumber(ARGV[12]), tonumber(ARGV[13]), tonumber(ARGV[14]), tonumber(ARGV[15])
local bw = math.max(1, math.floor(winms / 10))
local granted = 0

local function clearwin()
  local f = {}
  for i = 0, 9 do f[#f+1] = 'e'..i; f[#f+1] = 'c'..i; f[#f+1] = 'f'..i end
  redis.call('HDEL', k, unpack(f))
end
local function open()
  if st == 0 and now - closed > maxms then trips = 0 end
  trips = trips + 1
  local d = openms
  for i = 2, trips do if d < maxms then d = d * 2 end end
  if d > maxms then d = maxms end
  st = 1; gen = gen + 1; untl = now + d; probes = 0; holders = ''; consec = 0
  clearwin()
end

if st == 0 then
  local e = math.floor(now / bw)
  if dcalls > 0 then
    local slot = e % 10
    if tonumber(redis.call('HGET', k, 'e'..slot)) ~= e then
      redis.call('HSET', k, 'e'..slot, e, 'c'..slot, 0, 'f'..slot, 0)
    end
    redis.call('HINCRBY', k, 'c'..slot, dcalls)
    if dfails > 0 then redis.call('HINCRBY', k, 'f'..slot, dfails) end
  end
  if ARGV[3] == '1' then consec = tonumber(ARGV[4]) else consec = consec + dfails end
  local trip = ARGV[5] == '1' or consec >= threshold
  if not trip and ratio > 0 and dfails > 0 then
    local f = {}
    for i = 0, 9 do f[#f+1] = 'e'..i; f[#f+1] = 'c'..i; f[#f+1] = 'f'..i end
    local v = redis.call('HMGET', k, unpack(f))
    local calls, fails = 0, 0
    for i = 0, 9 do
      local be = tonumber(v[3*i+1])
      if be and be > e - 10 and be <= e then
        calls = calls + (tonumber(v[3*i+2]) or 0)
        fails = fails + (tonumber(v[3*i+3]) or 0)
      end
    end
    if calls >= mincalls and fails >= ratio * calls then trip = true end
  end
  if trip then open() end
elseif now >= untl then
  if ARGV[6] == '1' and tonumber(ARGV[7]) == gen then
    st = 0; closed = now; consec = 0; probes = 0; holders = ''
    clearwin()
  elseif ARGV[5] == '1' then
    open()
  else
    local held = tonumber(ARGV[19]) or 0
    if node ~= '' and holders ~= '' then
      -- claims listed for this node beyond those it holds are lost: free them
      local kept, mine = {}, 0
      for id in string.gmatch(holders, '[^,]+') do
        if id == node then mine = mine + 1 end
        if id ~= node or mine <= held then kept[#kept+1] = id end
      end
      if mine > held then
        probes = math.max(0, probes - (mine - held)); holders = table.concat(kept, ',')
      end
    end
    if ARGV[8] == '1' then
      if probes >= halfmax and now - untl > tonumber(ARGV[17]) then
        -- probes whose outcome never came: a fresh budget
        probes = 0; untl = now; holders = ''
      end
      if probes < halfmax then
        probes = probes + 1; granted = 1
        if node ~= '' then
          if holders == '' then holders = node else holders = holders .. ',' .. node end
        end
      end
    end
  end
end
redis.call('HSET', k, 'st', st, 'gen', gen, 'until', untl, 'trips', trips, 'closed', closed, 'probes', probes, 'consec', consec, 'holders', holders)
redis.call('PEXPIRE', k, tonumber(ARGV[16]))
local eff = st
if st == 1 and now >= untl then eff = 2 end
return {eff, gen, untl - now, granted, trips}
`

// grantIdle is how many sync intervals a probe token may sit unused on a
// node before it goes back to the cluster's budget (1 s at the default
// interval): ample for the next request of a node with traffic for the
// instance, short next to ProbeTimeout, which is what the other nodes would
// wait otherwise.
const grantIdle = 5

var syncSHA = func() string {
	s := sha1.Sum([]byte(syncScript))
	return hex.EncodeToString(s[:])
}()

// news is what one instance tells the cluster in one sync; kept so a failed
// sync can hand it back.
type news struct {
	in                       *instance
	calls, fails             int64
	success, tripped, probed bool
	args                     []any
}

// SyncOnce runs one cluster sync: one pipelined round trip carrying every
// known instance's news and bringing back its cluster state. Run calls it;
// tests may call it directly.
func (b *Breakers) SyncOnce(ctx context.Context) {
	now := b.o.Now().UnixNano()
	var batch []*news
	b.insts.Range(func(k, v any) bool {
		in := v.(*instance)
		if State(in.state.Load()) == Closed && now-in.lastUsed.Load() > int64(b.o.IdleTTL) &&
			in.dCalls.Load() == 0 && !in.probeOK.Load() {
			b.insts.Delete(k)
			return true
		}
		if b.o.Redis != nil {
			batch = append(batch, b.collect(in, now))
		}
		return true
	})
	if len(batch) == 0 {
		return
	}
	ctx, cancel := context.WithTimeout(ctx, b.o.SyncTimeout)
	defer cancel()
	cmds, err := b.exec(ctx, batch, true)
	if err == nil {
		var again []*news
		var idx []int
		for i, c := range cmds {
			if c.Err() != nil && strings.HasPrefix(c.Err().Error(), "NOSCRIPT") {
				again = append(again, batch[i])
				idx = append(idx, i)
			}
		}
		if len(again) > 0 { // first sync against this Redis: EVAL loads the script
			var more []*redis.Cmd
			more, err = b.exec(ctx, again, false)
			for j, i := range idx {
				if j < len(more) {
					cmds[i] = more[j]
				}
			}
		}
	}
	b.syncs.Add(1)
	ok := true
	for i, n := range batch {
		var reply []any
		if i < len(cmds) && cmds[i].Err() == nil {
			reply, _ = cmds[i].Val().([]any)
		}
		if len(reply) != 5 {
			ok = false
			b.giveBack(n)
			continue
		}
		var v [5]int64
		for j := range v {
			v[j], _ = reply[j].(int64)
		}
		b.apply(n.in, State(v[0]), v[1], time.Duration(v[2])*time.Millisecond, v[3] == 1, int32(v[4]))
	}
	if !ok {
		b.syncFails.Add(1)
		if b.syncOK.CompareAndSwap(true, false) {
			b.o.Logger.Warn("breaker sync: redis unavailable, breaking locally", "error", err)
		}
		return
	}
	if b.syncOK.CompareAndSwap(false, true) && b.syncs.Load() > 1 {
		b.o.Logger.Info("breaker sync: redis is back")
	}
}

func (b *Breakers) exec(ctx context.Context, batch []*news, sha bool) ([]*redis.Cmd, error) {
	p := b.o.Redis.Pipeline()
	cmds := make([]*redis.Cmd, len(batch))
	for i, n := range batch {
		keys := []string{b.redisKey(n.in.addr)}
		if sha {
			cmds[i] = p.EvalSha(ctx, syncSHA, keys, n.args...)
		} else {
			cmds[i] = p.Eval(ctx, syncScript, keys, n.args...)
		}
	}
	_, err := p.Exec(ctx)
	if err != nil && !strings.HasPrefix(err.Error(), "NOSCRIPT") {
		// Exec reports the first failed command; per-command errors are
		// read from cmds, a transport failure leaves every one failed.
		allFailed := true
		for _, c := range cmds {
			if c.Err() == nil {
				allFailed = false
			}
		}
		if allFailed {
			return cmds, err
		}
	}
	return cmds, nil
}

func (b *Breakers) collect(in *instance, now int64) *news {
	n := &news{in: in}
	n.calls = in.dCalls.Swap(0)
	n.fails = in.dFails.Swap(0)
	n.success = in.dSuccess.Swap(false)
	n.tripped = in.tripped.Swap(false)
	n.probed = in.probeOK.Swap(false)
	st := State(in.state.Load())
	// Only nodes with traffic for the instance ask for a probe token:
	// a token granted to an idle node would hold up the probe budget. For
	// the same reason a token no request used for grantIdle goes back (the
	// request that asked for it was served by another instance, and none
	// came after it): the claims this node reports below drop by it.
	if st == HalfOpen && b.syncOK.Load() && now-in.grantedAt.Load() > int64(grantIdle*b.o.SyncInterval) {
		if n := in.tokens.Load(); n > 0 {
			in.tokens.CompareAndSwap(n, 0) // lost to a request taking it: then it is used
		}
	}
	lost := now-in.halfSince.Load() > int64(b.o.ProbeTimeout)
	tokens, out := in.tokens.Load(), in.probesOut.Load()
	wantProbe := in.demand.Swap(false) &&
		((st == HalfOpen && tokens <= 0 && (out <= 0 || lost)) ||
			(st == Open && now >= in.openUntil.Load()))
	held := max(0, tokens)
	if !lost {
		held += max(0, out)
	}
	s := &b.o.Settings
	n.args = []any{
		n.calls, n.fails, flag(n.success), in.consec.Load(), flag(n.tripped), flag(n.probed), in.gen.Load(),
		flag(wantProbe), s.FailureThreshold, strconv.FormatFloat(s.FailureRatio, 'f', -1, 64), s.MinCalls,
		s.Window.Milliseconds(), s.OpenTimeout.Milliseconds(), s.MaxOpenTimeout.Milliseconds(),
		s.HalfOpenMaxCalls, (2*max(s.Window, s.MaxOpenTimeout) + b.o.IdleTTL).Milliseconds(),
		s.ProbeTimeout.Milliseconds(), b.id, held,
	}
	return n
}

func flag(b bool) int {
	if b {
		return 1
	}
	return 0
}

// giveBack restores news a failed sync could not deliver. A sync that timed
// out may in fact have landed; counting it twice errs towards opening.
func (b *Breakers) giveBack(n *news) {
	n.in.dCalls.Add(n.calls)
	n.in.dFails.Add(n.fails)
	if n.success {
		n.in.dSuccess.Store(true)
	}
	if n.tripped {
		n.in.tripped.Store(true)
	}
	if n.probed {
		n.in.probeOK.Store(true)
	}
}

// apply adopts the cluster's state for one instance.
func (b *Breakers) apply(in *instance, st State, gen int64, remaining time.Duration, granted bool, trips int32) {
	in.mu.Lock()
	now := b.o.Now().UnixNano()
	local := State(in.state.Load())
	from := local
	switch st {
	case Open:
		if local != Open || in.gen.Load() != gen {
			in.tokens.Store(0)
			in.probesOut.Store(0)
			in.consec.Store(0)
			in.win.reset()
		}
		in.gen.Store(gen)
		in.trips.Store(trips)
		in.openUntil.Store(now + int64(remaining))
		b.setState(in, Open)
	case HalfOpen:
		switch {
		case local == Closed && in.probeOK.Load():
			// our probe's success is on its way to the cluster
		case local == Closed && gen <= in.gen.Load():
			// closed here by a probe the cluster did not see (Redis was down)
		default:
			if local != HalfOpen {
				in.tokens.Store(0)
				in.probesOut.Store(0)
				in.halfSince.Store(now)
				b.setState(in, HalfOpen)
			}
			in.gen.Store(gen)
			in.trips.Store(trips)
			in.openUntil.Store(now + int64(remaining))
			if granted {
				if now-in.halfSince.Load() > int64(b.o.ProbeTimeout) {
					in.halfSince.Store(now) // a fresh budget after lost probes
				}
				in.grantedAt.Store(now)
				in.tokens.Add(1)
			}
		}
	case Closed:
		// Close when the cluster closed this open period or a later one, or
		// when it knows of no open period at all while ours has run out
		// (Redis lost its data): waiting for a gen that will never come
		// would keep the instance shut for good.
		settled := gen >= in.gen.Load() || now >= in.openUntil.Load()
		if local != Closed && settled && !in.tripped.Load() {
			b.closeLocked(in, now)
		}
		in.gen.Store(max(gen, in.gen.Load()))
	}
	to := State(in.state.Load())
	in.mu.Unlock()
	if from != to {
		b.o.Logger.Info("breaker state from cluster", "addr", in.addr, "from", from.String(), "to", to.String(), "gen", gen)
	}
}
