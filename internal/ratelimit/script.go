package ratelimit

// leaseScript grants up to ARGV[1] units of every limit of one key at once
// (GCRA), atomically: a cold request asks for 1 (the plain GCRA decision),
// a node leasing capacity for a busy key asks for more (lease.go).
//
// KEYS: one TAT key per limit, all sharing one hash tag (one slot).
// ARGV[1]: units wanted (≥ 1); ARGV[2]: a fixed "now" in µs for tests, or
// "" for Redis TIME; then per limit i: ARGV[3i] emission interval (µs),
// ARGV[3i+1] capacity (µs) = (burst+1) * interval, ARGV[3i+2] slack (µs).
//
// A unit's slot may run up to capacity - interval + slack ahead of now (the
// GCRA tolerance plus the slack): the node spends each unit no earlier than
// that before its slot and no later than slot + slack, which the interval's
// slack pays for (doc.go, "The bound"). The slack ahead is what lets a
// request be admitted while another node's lease holds the slots just
// ahead of now.
//
// A TAT expires when it falls behind now, on Redis' clock. With a test's
// fixed "now" it never expires: Redis would expire it on its own clock,
// which a test stalled by a loaded machine lets run ahead of the test's,
// dropping a TAT still ahead of the test's now (a fresh burst: 112 and 119
// admitted against 110 in TestLeasesThreeNodesBound under a CPU hog).
//
// TATs are written with %.0f because Lua's default number formatting
// (%.14g) would round a 16-digit microsecond timestamp. Time is Redis TIME
// in integer microseconds (exact in a Lua double until year 2255), so
// callers' clocks never matter and every node agrees.
//
// All-or-nothing: the first pass decides how many units every limit can
// give, the second writes only when that is at least one.
//
// Reply: {granted, now_us, then per limit: first_slot_us, remaining,
// retry_after_us, reset_after_us}. granted = 0 is a denial.
const leaseScript = `
local now
if ARGV[2] ~= '' then
  now = tonumber(ARGV[2])
else
  local t = redis.call('TIME')
  now = tonumber(t[1]) * 1000000 + tonumber(t[2])
end
local want = tonumber(ARGV[1])
local n = #KEYS
local tats = {}
local grant = want
for i = 1, n do
  local tat = tonumber(redis.call('GET', KEYS[i]))
  if tat == nil or tat < now then tat = now end
  tats[i] = tat
  local e = tonumber(ARGV[3*i])
  local cap = tonumber(ARGV[3*i+1])
  local slack = tonumber(ARGV[3*i+2])
  local room = math.floor((cap + slack - (tat - now)) / e)
  if room < grant then grant = room end
end
if grant < 0 then grant = 0 end
local out = {grant, now}
for i = 1, n do
  local e = tonumber(ARGV[3*i])
  local cap = tonumber(ARGV[3*i+1])
  local tat = tats[i]
  local remaining, retry, reset
  if grant >= 1 then
    local new_tat = tat + e * grant
    remaining = math.floor((cap - (new_tat - now)) / e)
    if remaining < 0 then remaining = 0 end
    retry = 0
    reset = new_tat - now
    if ARGV[2] == '' then
      redis.call('SET', KEYS[i], string.format('%.0f', new_tat), 'PX', math.floor((new_tat - now) / 1000) + 1)
    else
      redis.call('SET', KEYS[i], string.format('%.0f', new_tat))
    end
  else
    remaining = math.floor((cap - (tat - now)) / e)
    if remaining < 0 then remaining = 0 end
    retry = tat + e - now - cap
    if retry < 0 then retry = 0 end
    reset = tat - now
  end
  out[#out + 1] = tat
  out[#out + 1] = remaining
  out[#out + 1] = retry
  out[#out + 1] = reset
end
return out
`
