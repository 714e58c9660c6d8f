-- Kong supervises the plugin server: killed, it is respawned and requests
-- recover (Kong 3.9 answers 500 while it is down). Mirrors tests/e2e
-- TestPluginKilledRecovers and the harness's TestRespawnAfterKill.
local helpers = require "spec.helpers"
local sr = require "tests.pongo.helpers"

for _, strategy in helpers.each_strategy({ "postgres" }) do
  describe(sr.PLUGIN .. " plugin server restart [#" .. strategy .. "]", function()
    lazy_setup(function()
      local bp = helpers.get_db_utils(strategy, { "services", "routes", "plugins" }, { sr.PLUGIN })
      local service = bp.services:insert({
        name = "orders", host = helpers.mock_upstream_host, port = helpers.mock_upstream_port,
      })
      bp.routes:insert({ service = service, paths = { "/orders" } })
      bp.plugins:insert({ name = sr.PLUGIN, service = { id = service.id }, config = { registry = "kong" } })
      assert(helpers.start_kong(sr.kong_conf(strategy)))
    end)

    lazy_teardown(function()
      helpers.stop_kong()
    end)

    local function status()
      local c = helpers.proxy_client()
      local res = c:get("/orders/request")
      local s = res.status
      c:close()
      return s
    end

    it("is respawned after SIGKILL and serves again", function()
      assert.equal(200, status())
      -- process.lua logs "[pluginserver] started, pid N" for every spawn.
      assert.logfile().has.line([[started, pid [0-9]+]])
      local log = assert(io.open(helpers.test_conf.nginx_err_logs)):read("*a")
      local pid = assert(log:match("started, pid (%d+)"))
      assert(os.execute("kill -9 " .. pid))
      assert.logfile().has.line("external pluginserver 'service-registry' terminated", true, 10)
      helpers.wait_until(function() return status() == 200 end, 10)
      local after = assert(io.open(helpers.test_conf.nginx_err_logs)):read("*a")
      local pids = {}
      for p in after:gmatch("started, pid (%d+)") do pids[#pids + 1] = p end
      assert.is_true(#pids >= 2)
      assert.not_equal(pid, pids[#pids])
    end)
  end)
end
