#!/usr/bin/env bash
# Gateway benchmark (issue 12): the same upstream query, { orders { id item } },
# sent (g) through tokengate in gateway mode with a Bearer token, and (d) to the
# upstream directly with a JWT it verifies itself (jose, against tokengate's
# JWKS, the same check it makes of the gateway's assertion). g and d alternate
# for ROUNDS rounds of DUR seconds at CONNS connections, the order flipping
# each round, on this one machine (wrk, tokengate and node share its cores).
# After a discarded warm-up of each, prints each round and the ratio of
# medians; writes target/bench/gateway.txt.
#
#   scripts/bench-gateway.sh        # DUR=5 ROUNDS=6 CONNS=32 THREADS=1
#   TG_LOG=warn scripts/bench-gateway.sh   # tokengate without its access log
#
# tokengate runs with its default configuration, access log included
# (TOKENGATE_LOG=$TG_LOG, default info, into a file); the upstream logs nothing.
set -euo pipefail
cd "$(dirname "$0")/.."
DUR=${DUR:-5}
ROUNDS=${ROUNDS:-6}
CONNS=${CONNS:-32}
THREADS=${THREADS:-1}
TG_LOG=${TG_LOG:-info}
EMAIL=bench@example.com
PASSWORD=bench-password-123456
TG_PORT=18180
UP_PORT=18181

command -v wrk >/dev/null || { apt-get update -qq && apt-get install -y -qq wrk >/dev/null; }
(cd examples/gateway && [ -d node_modules ] || npm ci --no-audit --no-fund --loglevel=error)
echo "== building (release, thin LTO)"
[ -n "${NO_BUILD:-}" ] || cargo build --release --quiet
# BIN may name another build (an earlier commit's, to compare; NO_BUILD=1 then
# skips building).
BIN=${BIN:-target/release/tokengate}
OUT=target/bench
mkdir -p "$OUT"
RESULTS="$OUT/gateway.txt"
: > "$RESULTS"
. scripts/bench-lib.sh

TOKENGATE=http://127.0.0.1:$TG_PORT PORT=$UP_PORT ASSERTION_FILE="$WORK/assertion" \
  node scripts/bench_gateway_upstream.mjs > "$WORK/upstream.log" 2>&1 &
PIDS+=($!)
TOKENGATE_ADMIN_EMAIL=$EMAIL TOKENGATE_ADMIN_PASSWORD=$PASSWORD TOKENGATE_LOG=$TG_LOG \
  "$BIN" --listen 127.0.0.1:$TG_PORT --database-url "sqlite://$WORK/tg.db?mode=rwc" \
  --upstream http://127.0.0.1:$UP_PORT/graphql serve > "$WORK/tokengate.log" 2>&1 &
PIDS+=($!)
for _ in $(seq 1 100); do
  [ "$(curl -s -o /dev/null -w '%{http_code}' http://127.0.0.1:$TG_PORT/readyz)" = 200 ] && break
  sleep 0.2
done
COOKIE=$(curl -s -D - -o /dev/null http://127.0.0.1:$TG_PORT/auth/login -H 'content-type: application/json' \
  -d "{\"email\":\"$EMAIL\",\"password\":\"$PASSWORD\"}" | sed -n 's/^set-cookie: tokengate_session=\([^;]*\).*/\1/ip')
EXP=$(( $(date +%s) + 3600 ))
TOKEN=$(curl -s http://127.0.0.1:$TG_PORT/api -H "cookie: tokengate_session=$COOKIE" -H 'content-type: application/json' \
  -d "{\"query\":\"mutation { updateAccessToken(name: \\\"bench\\\", expirationTime: $EXP, scopes: [\\\"api:read\\\"]) { sessionJwt } }\"}" |
  python3 -c 'import sys, json; print(json.load(sys.stdin)["data"]["updateAccessToken"]["sessionJwt"])')

# One gateway request shows the upstream an assertion; the direct rounds reuse
# the latest one (valid 60 s: refreshed before each direct round).
fresh_assertion() {
  curl -s -o /dev/null http://127.0.0.1:$TG_PORT/api -H "Authorization: Bearer $TOKEN" \
    -H 'content-type: application/json' -d '{"query":"{ orders { id } }"}'
  sleep 0.5
  cat "$WORK/assertion"
}
check() { # URL TOKEN: one request must answer data
  curl -s "$1" -H "Authorization: Bearer $2" -H 'content-type: application/json' \
    -d '{"query":"{ orders { id item } }"}' | grep -q '"orders"' || { echo "no data from $1"; exit 1; }
}
check http://127.0.0.1:$TG_PORT/api "$TOKEN"
check http://127.0.0.1:$UP_PORT/graphql "$(fresh_assertion)"

run() { # LABEL URL TOKEN
  local line
  line=$(TOKEN="$3" wrk -t"$THREADS" -c"$CONNS" -d"${DUR}s" --latency -s scripts/wrk/upstream.lua "$2" | grep '^RESULT')
  echo "$1 ${line#RESULT }" | tee -a "$RESULTS"
}
# Warm-up, not counted: Node's JIT and both connection pools.
echo "== warm-up (3 s each way, discarded)"
TOKEN="$TOKEN" wrk -t"$THREADS" -c"$CONNS" -d3s -s scripts/wrk/upstream.lua http://127.0.0.1:$TG_PORT/api >/dev/null
TOKEN="$(fresh_assertion)" wrk -t"$THREADS" -c"$CONNS" -d3s -s scripts/wrk/upstream.lua http://127.0.0.1:$UP_PORT/graphql >/dev/null
echo "== $ROUNDS rounds of ${DUR}s, $CONNS connections, $THREADS wrk thread(s)"
for r in $(seq 1 "$ROUNDS"); do
  if [ $((r % 2)) = 1 ]; then
    run g_gateway http://127.0.0.1:$TG_PORT/api "$TOKEN"
    run d_direct http://127.0.0.1:$UP_PORT/graphql "$(fresh_assertion)"
  else
    run d_direct http://127.0.0.1:$UP_PORT/graphql "$(fresh_assertion)"
    run g_gateway http://127.0.0.1:$TG_PORT/api "$TOKEN"
  fi
done
python3 - "$RESULTS" <<'PY'
import re, statistics, sys
rows = {}
for line in open(sys.argv[1]):
    label, rest = line.split(' ', 1)
    rows.setdefault(label, []).append({k: float(v) for k, v in re.findall(r'(\w+)=([\d.]+)', rest)})
med = lambda label, k: statistics.median(r[k] for r in rows[label])
g, d = 'g_gateway', 'd_direct'
print(f"median rps: gateway {med(g,'rps'):.0f}, direct {med(d,'rps'):.0f}, ratio {med(g,'rps')/med(d,'rps'):.2f}x")
print(f"median p50: gateway {med(g,'p50_ms'):.2f} ms, direct {med(d,'p50_ms'):.2f} ms, added {med(g,'p50_ms')-med(d,'p50_ms'):.2f} ms")
print(f"median p99: gateway {med(g,'p99_ms'):.2f} ms, direct {med(d,'p99_ms'):.2f} ms")
errs = sum(r['non2xx'] + r['socket_errors'] for rs in rows.values() for r in rs)
print(f"errors (non-2xx + socket) across all rounds: {errs:.0f}")
PY
