package registry

import "github.com/redis/go-redis/v9"

// Every per-service script takes KEYS = keyspace.serviceKeys(name) and ends
// by bumping the version and publishing "<version> <service>" on the change
// feed, so a reader that sees the new version also sees the new state.
// Return shape: {code, version, serviceExists, routeMember, routeExists,
// extra, first lease end (unix ms, "0" for none)}.
// The tail after the code lets the caller update the global indexes with the
// state the script saw (see Store.applyIndex).

// Status codes returned by the scripts.
const (
	codeOK   = iota
	codeSame // register: identical route already stored
	codeRouteExists
	codeRouteNotFound
	codeServiceNotFound
	codeInstanceNotFound
	codeConflict // compare-and-swap lost a race: retry
	codeServiceOfRoute
)

// scriptTail is shared: state() reports what the indexes must reflect;
// finish() bumps the version, publishes, and reports the state.
const scriptTail = `
local function state(code, v, extra)
  local exists = redis.call('EXISTS', KEYS[1])
  local member = redis.call('HGET', KEYS[5], 'member') or ''
  local routeExists = 0
  if member ~= '' and redis.call('HEXISTS', KEYS[5], 'spec') == 1 then routeExists = 1 end
  if member == '' and ARGV[3] then member = ARGV[3] end
  local first = redis.call('ZRANGE', KEYS[3], 0, 0, 'WITHSCORES')
  local lease = '0'
  if #first == 2 then lease = first[2] end
  return {code, v, exists, member, routeExists, extra or '', lease}
end
local function finish(code, extra)
  local v = redis.call('INCR', KEYS[4])
  redis.call('PUBLISH', ARGV[1], v .. ' ' .. ARGV[2])
  return state(code, v, extra)
end
`

// ARGV: channel, service, member, spec, registered_at, meta name, instance id, instance JSON
var registerScript = redis.NewScript(scriptTail + `
local old = redis.call('HGET', KEYS[5], 'spec')
if old then
  if old == ARGV[4] then
    return {1, 0, 0, '', 0, redis.call('HGET', KEYS[5], 'registered_at')}
  end
  return {2, 0, 0, '', 0, ''}
end
redis.call('DEL', KEYS[1], KEYS[2], KEYS[3])
redis.call('HSET', KEYS[5], 'member', ARGV[3], 'spec', ARGV[4], 'registered_at', ARGV[5])
redis.call('HSET', KEYS[1], 'name', ARGV[2])
redis.call('HSET', KEYS[2], ARGV[6], ARGV[7])
return finish(0, ARGV[5])
`)

// ARGV: channel, service, member
var deregisterScript = redis.NewScript(scriptTail + `
local r = redis.call('HMGET', KEYS[5], 'spec', 'registered_at')
if not r[1] then return {3, 0, 0, '', 0, ''} end
redis.call('DEL', KEYS[1], KEYS[2], KEYS[3], KEYS[5])
return finish(0, cjson.encode({r[1], r[2]}))
`)

// ARGV: channel, service, ”, id, instance JSON, expiry ms (0 = none)
var putInstanceScript = redis.NewScript(scriptTail + `
redis.call('HSETNX', KEYS[1], 'name', ARGV[2])
redis.call('HSET', KEYS[2], ARGV[4], ARGV[5])
if ARGV[6] ~= '0' then
  redis.call('ZADD', KEYS[3], ARGV[6], ARGV[4])
else
  redis.call('ZREM', KEYS[3], ARGV[4])
end
return finish(0)
`)

// Compare-and-swap of one instance: ARGV: channel, service, ”, id, old JSON, new JSON, expiry ms.
var casInstanceScript = redis.NewScript(scriptTail + `
if redis.call('EXISTS', KEYS[1]) == 0 then return {4, 0, 0, '', 0, ''} end
local cur = redis.call('HGET', KEYS[2], ARGV[4])
if not cur then return {5, 0, 0, '', 0, ''} end
if cur ~= ARGV[5] then return {6, 0, 0, '', 0, ''} end
redis.call('HSET', KEYS[2], ARGV[4], ARGV[6])
if ARGV[7] ~= '0' then
  redis.call('ZADD', KEYS[3], ARGV[7], ARGV[4])
else
  redis.call('ZREM', KEYS[3], ARGV[4])
end
return finish(0)
`)

// ARGV: channel, service, ”, id
var deleteInstanceScript = redis.NewScript(scriptTail + `
if redis.call('EXISTS', KEYS[1]) == 0 then return {4, 0, 0, '', 0, ''} end
if redis.call('HDEL', KEYS[2], ARGV[4]) == 0 then return {5, 0, 0, '', 0, ''} end
redis.call('ZREM', KEYS[3], ARGV[4])
return finish(0)
`)

// Deletes a service with its instances, leases, tags and maintenance; not
// a route's (its route record stays the owner). ARGV: channel, service
var deleteServiceScript = redis.NewScript(scriptTail + `
if redis.call('EXISTS', KEYS[1]) == 0 then return {4, 0, 0, '', 0, ''} end
if redis.call('HEXISTS', KEYS[5], 'spec') == 1 then return {7, 0, 0, '', 0, ''} end
redis.call('DEL', KEYS[1], KEYS[2], KEYS[3])
return finish(0)
`)

// ARGV: channel, service, ”, field, JSON value
var setFieldScript = redis.NewScript(scriptTail + `
if redis.call('EXISTS', KEYS[1]) == 0 then return {4, 0, 0, '', 0, ''} end
redis.call('HSET', KEYS[1], ARGV[4], ARGV[5])
return finish(0)
`)

// Removes leases that ended at or before ARGV[4] (unix ms). ARGV: channel, service, ”, now ms.
var expireScript = redis.NewScript(scriptTail + `
local ids = redis.call('ZRANGEBYSCORE', KEYS[3], '-inf', ARGV[4])
if #ids == 0 then
  -- Nothing due (a heartbeat won the race): no change, but refresh the
  -- lease index so this service is not swept again before its next lease end.
  return state(0, tonumber(redis.call('GET', KEYS[4]) or '0'), '0')
end
for _, id in ipairs(ids) do
  redis.call('HDEL', KEYS[2], id)
  redis.call('ZREM', KEYS[3], id)
end
return finish(0, tostring(#ids))
`)

// Reads the state the index must reflect, without changing anything.
// ARGV: channel, service
var stateScript = redis.NewScript(scriptTail + `
return state(0, tonumber(redis.call('GET', KEYS[4]) or '0'), '')
`)

// indexScript applies one service's state to the global indexes, unless a
// newer state of that service was applied already (epochs): index updates
// may arrive out of order, the service version decides.
// KEYS = keyspace.indexKeys(); ARGV: service, version, serviceExists, member,
// routeExists, first lease end (ms, "0": none), pending token ("" for none).
// It returns how many service or route index entries it added or removed.
// The writer's pending token goes in any case: a newer state that was applied
// already was read after this writer's records, so it covers them.
var indexScript = redis.NewScript(`
redis.call('INCR', KEYS[3])
if ARGV[7] and ARGV[7] ~= '' then redis.call('ZREM', KEYS[6], ARGV[7]) end
local cur = tonumber(redis.call('HGET', KEYS[4], ARGV[1]) or '0')
local v = tonumber(ARGV[2])
if v < cur then return 0 end
redis.call('HSET', KEYS[4], ARGV[1], ARGV[2])
local changed = 0
if ARGV[3] == '1' then
  changed = changed + redis.call('SADD', KEYS[2], ARGV[1])
else
  changed = changed + redis.call('SREM', KEYS[2], ARGV[1])
end
if ARGV[4] ~= '' then
  if ARGV[5] == '1' then
    changed = changed + redis.call('ZADD', KEYS[1], 0, ARGV[4])
  else
    changed = changed + redis.call('ZREM', KEYS[1], ARGV[4])
  end
end
if ARGV[6] ~= '0' and ARGV[3] == '1' then redis.call('ZADD', KEYS[5], ARGV[6], ARGV[1]) else redis.call('ZREM', KEYS[5], ARGV[1]) end
return changed
`)

// readScript reads one service atomically: {meta, instances, version},
// the hashes as flat field/value arrays. One EVALSHA per service, so many
// services pipeline even on a Cluster (where MULTI cannot span slots).
var readScript = redis.NewScript(`
return {redis.call('HGETALL', KEYS[1]), redis.call('HGETALL', KEYS[2]), redis.call('GET', KEYS[4]) or ''}
`)
