-- Kong supervises the plugin server: killed, it is respawned and requests
-- recover. Mirrors tests/e2e TestPluginKilledRecovers and the harness's
-- TestRespawnAfterKill. The route's Kong service points nowhere (port 9):
-- only the plugin's set_target (registry = redis) makes a request succeed,
-- so a 200 proves the plugin ran. While the server is down, Kong 3.4 skips
-- the plugin (502 from port 9) and Kong 3.9 answers 500; both recover.
local helpers = require "spec.helpers"
local sr = require "tests.pongo.helpers"

for _, strategy in helpers.each_strategy({ "postgres" }) do
  describe(sr.PLUGIN .. " plugin server restart [#" .. strategy .. "]", function()
    local red
    local request = { method = "GET", path = "/orders/request" }
    local function ok(res) return res.status == 200 end

    lazy_setup(function()
      red = sr.redis_connect()
      assert(red:flushall())
      sr.put_instance(red, "orders", "i1", helpers.mock_upstream_host .. ":" .. helpers.mock_upstream_port, 1)
      local bp = helpers.get_db_utils(strategy, { "services", "routes", "plugins" }, { sr.PLUGIN })
      local service = bp.services:insert({ name = "orders", host = "127.0.0.1", port = 9, retries = 0 })
      bp.routes:insert({ service = service, paths = { "/orders" } })
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

    it("is respawned after SIGKILL and serves again", function()
      assert.equal(200, sr.wait_for_plugin(request, ok))
      local before = sr.server_pids()
      assert.is_true(#before >= 1, "no plugin server pid in error.log")
      local pid = before[#before]
      -- os.execute: true with Lua 5.2 semantics (official Kong), 0 without.
      local killed = os.execute("kill -9 " .. pid)
      assert.is_true(killed == true or killed == 0, "kill -9 " .. pid .. " failed")
      assert.logfile().has.line("external pluginserver 'service-registry' terminated", true, 30)
      assert.equal(200, sr.wait_for_plugin(request, ok))
      -- The new server can answer before its start is logged (the
      -- supervisor writes the line after the spawn): wait for the line.
      local after
      helpers.wait_until(function()
        after = sr.server_pids()
        return #after > #before
      end, 30, 0.1)
      assert.not_equal(pid, after[#after])
    end)
  end)
end
