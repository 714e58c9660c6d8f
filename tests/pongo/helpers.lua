-- Shared setup for the service-registry pongo specs.
--
-- The plugin is a Go binary: build it for Linux before `pongo run`
-- (`CGO_ENABLED=0 make build` puts it in bin/); pongo mounts this repository
-- at /kong-plugin inside the Kong container. Kong starts and queries it like
-- any external plugin (kong/runloop/plugin_servers/process.lua).
local helpers = require "spec.helpers"

local _M = {}

_M.PLUGIN = "service-registry"
_M.BIN = os.getenv("SR_PLUGIN_BIN") or "/kong-plugin/bin/service-registry"

-- kong_conf returns start_kong settings that load the plugin server, as
-- Kong's own spec/02-integration/10-external-plugins specs do.
function _M.kong_conf(strategy, extra)
  local prefix = helpers.test_conf.prefix
  local conf = {
    nginx_conf = "spec/fixtures/custom_nginx.template",
    database = strategy,
    log_level = "info",
    plugins = "bundled," .. _M.PLUGIN,
    pluginserver_names = _M.PLUGIN,
    pluginserver_service_registry_socket = prefix .. "/" .. _M.PLUGIN .. ".socket",
    pluginserver_service_registry_query_cmd = _M.BIN .. " -dump",
    pluginserver_service_registry_start_cmd = _M.BIN .. " -kong-prefix " .. prefix,
  }
  for k, v in pairs(extra or {}) do
    conf[k] = v
  end
  return conf
end

-- wait_for_plugin polls `request` (a table for client:send, e.g.
-- { method = "GET", path = "/x", headers = { host = "a.test" } }) through
-- fresh proxy connections until `ran(res)` says the plugin ran, and returns
-- that response's status and body. A user's spec has to do this too:
-- helpers.start_kong returns before Kong's worker has connected to the plugin
-- server, and until it has, Kong 3.4 proxies *without* the plugin ("plugin
-- server is not ready") while Kong 3.9 answers 500. So the spec waits for a
-- response only the plugin can produce, never for a fixed time.
function _M.wait_for_plugin(request, ran, timeout)
  local status, body
  helpers.wait_until(function()
    local c = helpers.proxy_client()
    local res = c:send(request)
    if not res then
      c:close()
      return false
    end
    local ok = ran(res)
    status, body = res.status, res:read_body()
    c:close()
    return ok
  end, timeout or 30, 0.1)
  return status, body
end

-- server_pids lists the plugin server pids Kong logged, oldest first, in
-- every wording we know: official Kong 3.4 copies the server's output as
-- "[service-registry:<pid>] ..." lines (info level) and logs "Starting
-- service-registry" without a pid; Kong 3.9 logs "[pluginserver] started,
-- pid <pid>"; the ../shared/realkong build of 3.4 logs "Starting
-- service-registry (pid <pid>, ...)" and keeps the output in its own file.
function _M.server_pids()
  local f = assert(io.open(helpers.test_conf.nginx_err_logs))
  local pids = {}
  for line in f:lines() do
    local pid = line:match("started, pid (%d+)")
      or line:match("Starting service%-registry %(pid (%d+)")
      or line:match("%[service%-registry:(%d+)%]")
    if pid and pid ~= pids[#pids] then
      pids[#pids + 1] = pid
    end
  end
  f:close()
  return pids
end

-- redis_connect opens the Redis pongo starts with --redis.
function _M.redis_connect()
  local redis = require "resty.redis"
  local red = redis:new()
  red:set_timeouts(2000, 2000, 2000)
  assert(red:connect(helpers.redis_host, helpers.redis_port))
  return red
end

-- put_instance writes one instance the way internal/registry's Store does
-- (instance hash, service name, version bump, change-feed message).
function _M.put_instance(red, service, id, address, weight)
  local prefix = "sr:v1:{" .. service .. "}:"
  local cjson = require "cjson"
  local js = cjson.encode({ id = id, address = address, weight = weight,
                            updated_at = "2026-01-01T00:00:00Z" })
  assert(red:hsetnx(prefix .. "service", "name", service))
  assert(red:hset(prefix .. "instances", id, js))
  local v = assert(red:incr(prefix .. "version"))
  assert(red:publish("sr:v1:changes", v .. " " .. service))
end

function _M.delete_instance(red, service, id)
  local prefix = "sr:v1:{" .. service .. "}:"
  assert(red:hdel(prefix .. "instances", id))
  local v = assert(red:incr(prefix .. "version"))
  assert(red:publish("sr:v1:changes", v .. " " .. service))
end

return _M
