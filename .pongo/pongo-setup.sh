#!/usr/bin/env bash
# Sourced by Pongo inside the Kong test container before busted runs
# (pongo_entrypoint.sh), so these exports reach the spec process.
#
# The plugin is a go-pdk binary, not a Lua rock: the spec process itself must
# know its plugin server, because helpers.get_db_utils(..., {"service-registry"})
# loads the plugin's schema from `<bin> -dump` in the spec process, before any
# Kong starts. Kong's bin/busted turns KONG_TEST_* into KONG_* for it; the
# specs' start_kong settings (tests/pongo/helpers.lua) say the same.
# Build the binary on the host first: CGO_ENABLED=0 make build.
sr_bin=${SR_PLUGIN_BIN:-/kong-plugin/bin/service-registry}
sr_prefix=${KONG_TEST_PREFIX:-/kong-plugin/servroot}
if [ ! -x "$sr_bin" ]; then
  echo "pongo-setup: $sr_bin is missing: run 'CGO_ENABLED=0 make build' on the host first" >&2
fi
export SR_PLUGIN_BIN=$sr_bin
export KONG_TEST_PLUGINS=${KONG_TEST_PLUGINS:-bundled,service-registry}
export KONG_TEST_PLUGINSERVER_NAMES=${KONG_TEST_PLUGINSERVER_NAMES:-service-registry}
export KONG_TEST_PLUGINSERVER_SERVICE_REGISTRY_SOCKET=${KONG_TEST_PLUGINSERVER_SERVICE_REGISTRY_SOCKET:-$sr_prefix/service-registry.socket}
export KONG_TEST_PLUGINSERVER_SERVICE_REGISTRY_QUERY_CMD=${KONG_TEST_PLUGINSERVER_SERVICE_REGISTRY_QUERY_CMD:-"$sr_bin -dump"}
export KONG_TEST_PLUGINSERVER_SERVICE_REGISTRY_START_CMD=${KONG_TEST_PLUGINSERVER_SERVICE_REGISTRY_START_CMD:-"$sr_bin -kong-prefix $sr_prefix"}
# `pongo shell` then `kong start` use the plain KONG_* names.
export KONG_PLUGINS=${KONG_PLUGINS:-$KONG_TEST_PLUGINS}
export KONG_PLUGINSERVER_NAMES=${KONG_PLUGINSERVER_NAMES:-$KONG_TEST_PLUGINSERVER_NAMES}
export KONG_PLUGINSERVER_SERVICE_REGISTRY_SOCKET=${KONG_PLUGINSERVER_SERVICE_REGISTRY_SOCKET:-$KONG_TEST_PLUGINSERVER_SERVICE_REGISTRY_SOCKET}
export KONG_PLUGINSERVER_SERVICE_REGISTRY_QUERY_CMD=${KONG_PLUGINSERVER_SERVICE_REGISTRY_QUERY_CMD:-$KONG_TEST_PLUGINSERVER_SERVICE_REGISTRY_QUERY_CMD}
export KONG_PLUGINSERVER_SERVICE_REGISTRY_START_CMD=${KONG_PLUGINSERVER_SERVICE_REGISTRY_START_CMD:-$KONG_TEST_PLUGINSERVER_SERVICE_REGISTRY_START_CMD}
unset sr_bin sr_prefix

# Pongo's default action (installs rockspec dependencies; this repo has none).
if [ -f /pongo/default-pongo-setup.sh ]; then
  # shellcheck source=/dev/null
  . /pongo/default-pongo-setup.sh
fi
