#!/usr/bin/env bash
# updateAccessToken (scenario d of scripts/bench.sh) for two builds side by
# side: each serves its own fresh database, and wrk runs alternate A, B for
# ROUNDS rounds of DUR seconds (64 connections, one account, a cookie, names
# cycling so most issues rotate an earlier token away).
#
#   A=/tmp/old-tokengate B=target/release/tokengate BACKEND=sqlite scripts/bench-writes.sh
#   BACKEND=postgres ROUNDS=3 DUR=8 CONNS=64 (the defaults but BACKEND=sqlite)
#
# Release builds of both are expected (cargo build --release; an earlier
# commit's binary copied aside for A).
set -euo pipefail
cd "$(dirname "$0")/.."

: "${A:?A=path of the first build}" "${B:?B=path of the second build}"
ROUNDS=${ROUNDS:-3}
DUR=${DUR:-8}
CONNS=${CONNS:-64}
BACKEND=${BACKEND:-sqlite}
EMAIL=bench@example.com
PASSWORD=bench-password-123456

. scripts/bench-lib.sh

start() { # PORT BIN TAG
  local db
  if [ "$BACKEND" = sqlite ]; then
    db="sqlite://$WORK/$3.db?mode=rwc"
  else
    local name="tokengate_writes_$3_$$"
    psql -q "$PG_ADMIN" -c "CREATE DATABASE $name" >/dev/null
    PG_DBS+=("$name")
    db="${PG_ADMIN%/*}/$name"
  fi
  TOKENGATE_ADMIN_EMAIL=$EMAIL TOKENGATE_ADMIN_PASSWORD=$PASSWORD TOKENGATE_MAX_TOKENS_PER_USER=100000 \
    "$2" --listen "127.0.0.1:$1" --database-url "$db" --issuer http://tokengate.bench >"$WORK/$3.log" 2>&1 &
  PIDS+=($!)
  wait_ready "$1" || { cat "$WORK/$3.log" >&2; exit 1; }
}

start 18091 "$A" a
start 18092 "$B" b
COOKIE_A=$(python3 scripts/bench_helper.py signin http://127.0.0.1:18091 "$EMAIL" "$PASSWORD")
COOKIE_B=$(python3 scripts/bench_helper.py signin http://127.0.0.1:18092 "$EMAIL" "$PASSWORD")
for r in $(seq 1 "$ROUNDS"); do
  for t in A B; do
    if [ "$t" = A ]; then port=18091 cookie=$COOKIE_A; else port=18092 cookie=$COOKIE_B; fi
    line=$(COOKIE=$cookie WRK_THREADS=2 wrk -t2 -c"$CONNS" -d"${DUR}s" --latency \
      -s scripts/wrk/issue.lua "http://127.0.0.1:$port/api" | grep '^RESULT')
    echo "$BACKEND round $r $t ${line#RESULT }"
  done
done
