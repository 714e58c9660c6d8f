-- Kong takes the plugin's -dump as its schema: the seed's call is accepted,
-- defaults are filled, bad config is refused with Kong's messages, and
-- registry = kong leaves routing to Kong. Mirrors tests/e2e
-- TestBadConfigRefusedByKong and TestRegistryKongPassThrough.
local helpers = require "spec.helpers"
local sr = require "tests.pongo.helpers"
local cjson = require "cjson"

for _, strategy in helpers.each_strategy({ "postgres" }) do
  describe(sr.PLUGIN .. " config [#" .. strategy .. "]", function()
    local admin, proxy, service

    lazy_setup(function()
      local bp = helpers.get_db_utils(strategy, { "services", "routes", "plugins" }, { sr.PLUGIN })
      service = bp.services:insert({
        name = "orders",
        host = helpers.mock_upstream_host,
        port = helpers.mock_upstream_port,
      })
      bp.routes:insert({ service = service, paths = { "/orders" } })
      -- registry = kong with a rate limit: the RateLimit-* headers show the
      -- plugin ran, Kong's own target (the mock upstream) shows it routed.
      local limited = bp.services:insert({
        name = "limited", host = helpers.mock_upstream_host, port = helpers.mock_upstream_port,
      })
      bp.routes:insert({ service = limited, paths = { "/limited" } })
      bp.plugins:insert({
        name = sr.PLUGIN,
        service = { id = limited.id },
        config = {
          registry = "kong",
          redis = { host = helpers.redis_host, port = helpers.redis_port, timeout_ms = 500 },
          rate_limit = { enabled = true, requests_per_min = 1000000 },
        },
      })
      assert(helpers.start_kong(sr.kong_conf(strategy)))
    end)

    lazy_teardown(function()
      helpers.stop_kong()
    end)

    before_each(function()
      admin = helpers.admin_client()
      proxy = helpers.proxy_client()
    end)

    after_each(function()
      if admin then admin:close() end
      if proxy then proxy:close() end
    end)

    it("accepts the seed's config.registry=kong and fills defaults", function()
      local res = admin:post("/services/orders/plugins", {
        headers = { ["Content-Type"] = "application/x-www-form-urlencoded" },
        body = "name=" .. sr.PLUGIN .. "&config.registry=kong",
      })
      local body = cjson.decode(assert.res_status(201, res))
      assert.equal("kong", body.config.registry)
      assert.equal(6379, body.config.redis.port)
      assert.equal(1000, body.config.cache_ttl_ms)
    end)

    it("routes through Kong's own target with registry = kong", function()
      local status, raw = sr.wait_for_plugin({ method = "GET", path = "/limited/request" },
        function(res) return res.headers["RateLimit-Limit"] ~= nil end)
      assert.equal(200, status)
      -- strip_path: Kong routed /limited/request to the upstream as /request.
      assert.equal("/request", cjson.decode(raw).vars.request_uri)
    end)

    it("refuses bad config with Kong's messages", function()
      local res = admin:post("/plugins", {
        headers = { ["Content-Type"] = "application/json" },
        body = { name = sr.PLUGIN, config = { registry = "bogus", redis = { port = 70000 }, bogus = 1 } },
      })
      local body = cjson.decode(assert.res_status(400, res))
      assert.equal("schema violation", body.name)
      assert.same({
        registry = "expected one of: kong, redis",
        redis = { port = "value should be between 1 and 65535" },
        bogus = "unknown field",
      }, body.fields.config)
    end)
  end)
end
