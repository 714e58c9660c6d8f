#!/bin/sh
# make run: adminsvc against the Redis at SR_REDIS_URL (default
# redis://127.0.0.1:6379/0). A Redis that answers there is used as it is;
# when none does and the address is local, one is started with AOF in
# $BIN (default bin/) on that port, and stopped when adminsvc exits.
set -u
bin=${BIN:-bin}
url=${SR_REDIS_URL:-redis://127.0.0.1:6379/0}
export SR_REDIS_URL="$url"
hp=${url#*://}; hp=${hp##*@}; hp=${hp%%/*}
case "$hp" in
  *:*) host=${hp%:*}; port=${hp##*:} ;;
  *) host=$hp; port=6379 ;;
esac
pidfile="$(cd "$bin" && pwd)/redis-$port.pid"
started=""
cleanup() {
  if [ -n "$started" ] && [ -f "$pidfile" ]; then
    pid=$(cat "$pidfile")
    if kill "$pid" 2>/dev/null; then
      # Redis saves and closes its files on the way out, then removes its
      # pid file: wait for that (at most 10 s), so nothing is still writing
      # in $bin when make run returns.
      i=0
      while [ -f "$pidfile" ] && kill -0 "$pid" 2>/dev/null && [ "$i" -lt 100 ]; do
        i=$((i + 1)); sleep 0.1
      done
      echo "make run: stopped the Redis it started on port $port" >&2
    fi
  fi
}
if ! redis-cli -u "$url" ping 2>/dev/null | grep -q PONG; then
  case "$host" in
    127.0.0.1|localhost) ;;
    *) echo "make run: no Redis answers at $hp and it is not local: start it or set SR_REDIS_URL" >&2; exit 1 ;;
  esac
  echo "make run: no Redis at $hp: starting one (AOF in $bin/) until adminsvc exits" >&2
  redis-server --port "$port" --bind 127.0.0.1 --appendonly yes --dir "$(cd "$bin" && pwd)" \
    --daemonize yes --pidfile "$pidfile" --logfile "$(cd "$bin" && pwd)/redis-$port.log" || exit 1
  started=1
  trap cleanup EXIT
  trap 'exit 130' INT TERM
  i=0
  until redis-cli -p "$port" ping 2>/dev/null | grep -q PONG; do
    i=$((i + 1)); [ "$i" -lt 100 ] || { echo "make run: Redis did not start" >&2; exit 1; }
    sleep 0.1
  done
fi
"$bin/adminsvc" "$@"
