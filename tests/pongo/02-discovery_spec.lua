-- registry = redis: the plugin picks the instance from the Redis registry
-- and sets the target; a removed instance stops receiving traffic. Mirrors
-- tests/e2e TestWeightedDiscovery and TestInstanceRemovedStopsTraffic.
local helpers = require "spec.helpers"
local sr = require "tests.pongo.helpers"
local cjson = require "cjson"

for _, strategy in helpers.each_strategy({ "postgres" }) do
  describe(sr.PLUGIN .. " discovery [#" .. strategy .. "]", function()
    local proxy, red
    local mock = helpers.mock_upstream_host .. ":" .. helpers.mock_upstream_port

    lazy_setup(function()
      red = sr.redis_connect()
      assert(red:flushall())
      sr.put_instance(red, "orders", "i1", mock, 1)

      local bp = helpers.get_db_utils(strategy, { "services", "routes", "plugins" }, { sr.PLUGIN })
      -- The Kong service points nowhere: only the plugin's set_target works.
      local service = bp.services:insert({ name = "orders", host = "127.0.0.1", port = 9, retries = 0 })
      bp.routes:insert({ service = service, hosts = { "orders.test" } })
      bp.plugins:insert({
        name = sr.PLUGIN,
        service = { id = service.id },
        config = {
          registry = "redis",
          service = "orders",
          redis = { host = helpers.redis_host, port = helpers.redis_port, timeout_ms = 500 },
        },
      })
      assert(helpers.start_kong(sr.kong_conf(strategy)))
    end)

    lazy_teardown(function()
      helpers.stop_kong()
      if red then red:close() end
    end)

    before_each(function()
      proxy = helpers.proxy_client()
    end)

    after_each(function()
      if proxy then proxy:close() end
    end)

    it("sends the request to the registered instance", function()
      -- The Kong service points nowhere: a 200 is the plugin's set_target.
      local status, raw = sr.wait_for_plugin({ method = "GET", path = "/request", headers = { host = "orders.test" } },
        function(res) return res.status == 200 end)
      assert.equal(200, status)
      local body = cjson.decode(raw)
      -- set_target makes the target host the upstream Host header.
      assert.equal(helpers.mock_upstream_host, body.headers.host)
    end)

    it("stops sending traffic to a removed instance", function()
      sr.delete_instance(red, "orders", "i1")
      helpers.wait_until(function()
        local c = helpers.proxy_client()
        local res = c:get("/request", { headers = { host = "orders.test" } })
        local status = res.status
        c:close()
        return status == 503
      end, 30)
      local res = proxy:get("/request", { headers = { host = "orders.test" } })
      local body = cjson.decode(assert.res_status(503, res))
      assert.equal("no healthy instance for service orders", body.message)
    end)
  end)
end
