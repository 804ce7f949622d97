#!/bin/sh
# Demo traffic for the docker-compose stack, so the dashboard, the traces and the alerts have
# something to show: a hot set of URLs (hits, refreshed every 30 s), a cold tail (misses), a burst
# of concurrent requests on one new URL (coalesced onto one origin load), uncacheable requests
# (pass), stale-while-revalidate, a failing path (origin 503s), and now and then a purge.
#
# POSIX sh and curl only. Settings (environment):
#   PROXY        sidecache's proxy port          (default http://sidecache:8080)
#   ADMIN        sidecache's admin port          (default http://sidecache:8081)
#   ADMIN_TOKEN  bearer token for the purge      (default: none)
#   ROUNDS       rounds to run, 0 for ever       (default 0)
#   PAUSE        seconds between rounds          (default 0.5)
#   DELAY_MS     the demo origin's delay on /slow/ URLs, in ms (default 300)
set -eu

PROXY=${PROXY:-http://sidecache:8080}
ADMIN=${ADMIN:-http://sidecache:8081}
ADMIN_TOKEN=${ADMIN_TOKEN:-}
ROUNDS=${ROUNDS:-0}
PAUSE=${PAUSE:-0.5}
DELAY_MS=${DELAY_MS:-300}

# One request; a failure (sidecache not up yet) is reported and the loop goes on.
get() {
  curl --silent --show-error --output /dev/null --max-time 35 "$PROXY$1" || echo "loadgen: GET $1 failed" >&2
}

purge() {
  if [ -n "$ADMIN_TOKEN" ]; then
    curl --silent --show-error --output /dev/null --max-time 10 -X POST \
      -H "Authorization: Bearer $ADMIN_TOKEN" "$ADMIN/purge?prefix=$1" || echo "loadgen: purge failed" >&2
  else
    curl --silent --show-error --output /dev/null --max-time 10 -X POST \
      "$ADMIN/purge?prefix=$1" || echo "loadgen: purge failed" >&2
  fi
}

round=0
while [ "$ROUNDS" -eq 0 ] || [ "$round" -lt "$ROUNDS" ]; do
  round=$((round + 1))

  # The hot set: ten URLs asked for again and again.
  i=0
  while [ "$i" -lt 10 ]; do
    get "/slow/hot-$i?delay_ms=$DELAY_MS"
    i=$((i + 1))
  done

  # The cold tail: a URL nobody asked for yet.
  get "/slow/cold-$round?delay_ms=$DELAY_MS"

  # Five clients at once on a new URL: one origin load, four coalesced waiters.
  for _ in 1 2 3 4 5; do
    get "/slow/burst-$round?delay_ms=$DELAY_MS" &
  done
  wait

  get "/private"        # never stored: pass
  get "/swr"            # stale-while-revalidate once 2 s old
  get "/vary"

  # Every tenth round, the origin fails; every fiftieth, the hot set is purged.
  if [ $((round % 10)) -eq 1 ]; then
    get "/fail"
  fi
  if [ $((round % 50)) -eq 2 ]; then
    purge "/slow/hot-"
  fi

  sleep "$PAUSE"
done
