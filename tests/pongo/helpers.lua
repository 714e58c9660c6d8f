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
