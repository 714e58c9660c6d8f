package ratelimit

// gcraScript checks and consumes every limit of one request atomically.
//
// KEYS: one TAT key per limit, all sharing one hash tag (one slot).
// ARGV[1]: cost; then per limit i: ARGV[2i] emission interval (µs),
// ARGV[2i+1] capacity (µs) = (burst+1) * interval.
//
// TATs are written with %.0f because Lua's default number formatting
// (%.14g) would round a 16-digit microsecond timestamp.
// Time is Redis TIME in integer microseconds (exact in a Lua double until
// year 2255), so callers' clocks never matter and every node agrees.
//
// All-or-nothing: the first pass decides, the second writes only when every
// limit admits, so a request denied by one limit consumes none.
//
// Reply: {allowed, then per limit: remaining, retry_after_us, reset_after_us}.
const gcraScript = `
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000000 + tonumber(t[2])
local cost = tonumber(ARGV[1])
local n = #KEYS
local tats = {}
local allowed = 1
for i = 1, n do
  local tat = tonumber(redis.call('GET', KEYS[i]))
  if tat == nil or tat < now then tat = now end
  tats[i] = tat
  local e = tonumber(ARGV[2*i])
  local cap = tonumber(ARGV[2*i+1])
  if tat + e * cost - now > cap then allowed = 0 end
end
local out = {allowed}
for i = 1, n do
  local e = tonumber(ARGV[2*i])
  local cap = tonumber(ARGV[2*i+1])
  local tat = tats[i]
  local new_tat = tat + e * cost
  local remaining, retry, reset
  if allowed == 1 then
    remaining = math.floor((cap - (new_tat - now)) / e)
    retry = 0
    reset = new_tat - now
    redis.call('SET', KEYS[i], string.format('%.0f', new_tat), 'PX', math.floor((new_tat - now) / 1000) + 1)
  else
    remaining = math.floor((cap - (tat - now)) / e)
    if remaining < 0 then remaining = 0 end
    retry = new_tat - now - cap
    if retry < 0 then retry = 0 end
    reset = tat - now
  end
  out[#out + 1] = remaining
  out[#out + 1] = retry
  out[#out + 1] = reset
end
return out
`
