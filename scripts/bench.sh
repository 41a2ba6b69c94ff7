#!/usr/bin/env bash
# Load benchmarks (issues 6 and 14): builds the release server, the framework
# floor and the no-guard baseline, runs them on SQLite and on PostgreSQL, and
# drives them with wrk from this same machine. Prints a summary and writes
# target/bench/results.txt.
#
#   scripts/bench.sh       # ROUNDS=4 AB_DUR=5 DUR=10 CONNS=64 THREADS=2 NTOKENS=300
#   BACKENDS=sqlite ONLY=side scripts/bench.sh    # one backend; only the side-by-side runs
#   ONLY=rest scripts/bench.sh    # all but the side-by-side runs (d, e, propagation, RSS)
#
# tokengate runs with its default configuration, logging on (INFO, one line per
# request, to a file). Side by side, alternating (ROUNDS rounds of AB_DUR
# seconds, the order rotating each round so drift hits all alike):
#   f  the framework floor (benches/floor_server.rs): bare axum + async-graphql,
#      a SHA-256 token map, no logging, no database, no tokengate code
#   a  the no-guard baseline (benches/baseline_server.rs): tokengate's own
#      /api path, layers and logging with the guard replaced by a fixed caller
#   b  tokengate, Bearer, NTOKENS distinct live tokens
# for three requests: Bearer { me { id } } (f, a, b), Bearer
# { me { id email role } } (f, b), cookie { me { id } } (f, b). Then, DUR
# seconds each: d updateAccessToken (cookie, a new name each time); e 99% Bearer
# use + 1% revokeAccessToken, alternating with the same load without revocations.
# Then: revocation propagation between two processes (100 revocations), cold
# start to /readyz, RSS (idle after start-up, after a sign-in, peak), and RSS
# with 1,000,000 tokens in the database.
set -euo pipefail
cd "$(dirname "$0")/.."

DUR=${DUR:-10}
# a and b alternate for ROUNDS rounds of AB_DUR seconds, the order flipping each
# round, so drift (SQLite's WAL growing, the machine's other load) hits both alike.
ROUNDS=${ROUNDS:-4}
AB_DUR=${AB_DUR:-5}
CONNS=${CONNS:-64}
THREADS=${THREADS:-2}
NTOKENS=${NTOKENS:-300}
PG_ADMIN=${PG_ADMIN:-postgres://postgres@127.0.0.1:5432/postgres}
EMAIL=bench@example.com
PASSWORD=bench-password-123456
ISSUER=http://tokengate.bench

command -v wrk >/dev/null || { apt-get update -qq && apt-get install -y -qq wrk >/dev/null; }
python3 -c 'import requests' 2>/dev/null || pip install --quiet requests

echo "== building (release, thin LTO)"
[ -n "${NO_BUILD:-}" ] || cargo build --release --quiet
bench_bin() { # NAME: the path of a bench target's executable (release profile)
  cargo bench --bench "$1" --no-run --message-format=json 2>/dev/null |
    python3 -c 'import sys, json
for line in sys.stdin:
    m = json.loads(line)
    if m.get("reason") == "compiler-artifact" and m.get("executable") and m["target"]["name"] == sys.argv[1]:
        print(m["executable"])' "$1"
}
BASELINE=${BASELINE:-$(bench_bin baseline_server)}
FLOOR=${FLOOR:-$(bench_bin floor_server)}
# BIN, BASELINE and FLOOR may name other builds (an earlier commit's, to
# compare; NO_BUILD=1 then skips building).
BIN=${BIN:-target/release/tokengate}
OUT=target/bench
mkdir -p "$OUT"
RESULTS="$OUT/results.txt"
: > "$RESULTS"
. scripts/bench-lib.sh

say() { echo "$*" | tee -a "$RESULTS"; }
ms_now() { date +%s%3N; }

# start_server PORT DBURL -> sets SERVER_PID
# Default configuration but for the per-account token cap (default 100): the
# runs issue thousands of tokens to one account.
start_server() {
  TOKENGATE_ADMIN_EMAIL=$EMAIL TOKENGATE_ADMIN_PASSWORD=$PASSWORD TOKENGATE_MAX_TOKENS_PER_USER=100000 \
    "$BIN" --listen "127.0.0.1:$1" --database-url "$2" --issuer "$ISSUER" >"$WORK/server-$1.log" 2>&1 &
  SERVER_PID=$!
  PIDS+=("$SERVER_PID")
  wait_ready "$1"
}

stop() { kill "$1" 2>/dev/null || true; wait "$1" 2>/dev/null || true; }

# check_token PORT TOKEN: the token must work before a load run counts.
check_token() {
  local body
  body=$(curl -s -H "authorization: Bearer $2" -H 'content-type: application/json' \
    -d '{"query":"{ me { id } }"}' "http://127.0.0.1:$1/api")
  case "$body" in
    *'"me":{"id"'*) ;;
    *) echo "token refused on port $1: $body" >&2; exit 1 ;;
  esac
}

rss_kib() { awk -v k="$2" '$1 == k":" { print $2 }' "/proc/$1/status"; }

# wrk_run LABEL URL SCRIPT [VAR=VALUE...]   (duration: $RUN_DUR, default $DUR)
wrk_run() {
  local label=$1 url=$2 script=$3
  shift 3
  local line
  line=$(env "$@" WRK_THREADS="$THREADS" wrk -t"$THREADS" -c"$CONNS" -d"${RUN_DUR:-$DUR}s" --latency -s "$script" "$url" | grep '^RESULT')
  say "$BACKEND $label ${line#RESULT }"
}

for BACKEND in ${BACKENDS:-sqlite postgres}; do
  echo "== $BACKEND"
  if [ "$BACKEND" = sqlite ]; then
    DB="sqlite://$WORK/bench.db?mode=rwc"
  else
    name="tokengate_bench_$$"
    psql -q "$PG_ADMIN" -c "CREATE DATABASE $name" >/dev/null
    PG_DBS+=("$name")
    DB="${PG_ADMIN%/*}/$name"
  fi
  t0=$(ms_now)
  start_server 18080 "$DB"
  t1=$(ms_now)
  MAIN=$SERVER_PID
  say "$BACKEND cold_start_to_readyz_ms=$((t1 - t0)) (first start: migrations and first key included)"
  sleep 1
  say "$BACKEND idle_rss_after_start_kib=$(rss_kib "$MAIN" VmRSS)"
  COOKIE=$(python3 scripts/bench_helper.py signin http://127.0.0.1:18080 "$EMAIL" "$PASSWORD")
  sleep 1
  say "$BACKEND idle_rss_after_sign_in_kib=$(rss_kib "$MAIN" VmRSS)"
  # d first, while the account holds few tokens (2 threads x 32 names at most).
  [ "${ONLY:-}" = side ] || wrk_run "d_update_access_token" http://127.0.0.1:18080/api scripts/wrk/issue.lua COOKIE="$COOKIE"
  python3 scripts/bench_helper.py issue http://127.0.0.1:18080 "$COOKIE" "$NTOKENS" "$WORK/tokens-ids.txt"
  cut -d' ' -f2 "$WORK/tokens-ids.txt" > "$WORK/tokens.txt"
  USER_ID=$(curl -s -H "cookie: tokengate_session=$COOKIE" -H 'content-type: application/json' \
    -d '{"query":"{ me { id } }"}' http://127.0.0.1:18080/api | python3 -c 'import sys, json; print(json.load(sys.stdin)["data"]["me"]["id"])')
  "$BASELINE" 127.0.0.1:18090 "$DB" >"$WORK/baseline.log" 2>&1 &
  BASE_PID=$!
  PIDS+=("$BASE_PID")
  "$FLOOR" 127.0.0.1:18091 "$WORK/tokens.txt" "$COOKIE" "$USER_ID" "$EMAIL" >"$WORK/floor.log" 2>&1 &
  FLOOR_PID=$!
  PIDS+=("$FLOOR_PID")
  sleep 1
  check_token 18080 "$(head -n1 "$WORK/tokens.txt")"
  check_token 18091 "$(head -n1 "$WORK/tokens.txt")"

  # side_by_side NAME SCRIPT FIELDS TARGET...: ROUNDS rounds of AB_DUR seconds,
  # each target (f = floor, a = baseline, b = tokengate) once per round, the
  # order rotating. Every target gets the same script, so the same client cost.
  side_by_side() {
    local name=$1 script=$2 fields=$3
    shift 3
    local targets=("$@") n=$#
    for round in $(seq 1 "$ROUNDS"); do
      for k in $(seq 0 $((n - 1))); do
        local t=${targets[$(((round + k) % n))]} port
        case $t in f) port=18091 ;; a) port=18090 ;; b) port=18080 ;; esac
        RUN_DUR=$AB_DUR wrk_run "${name}_$t" "http://127.0.0.1:$port/api" "$script" \
          TOKENS="$WORK/tokens.txt" COOKIE="$COOKIE" FIELDS="$fields"
      done
    done
  }
  if [ "${ONLY:-}" != rest ]; then
    side_by_side bearer_id scripts/wrk/bearer.lua "id" f a b
    side_by_side bearer_id_email_role scripts/wrk/bearer.lua "id email role" f b
    side_by_side cookie_id scripts/wrk/me.lua "id" f b
  fi
  stop "$BASE_PID"
  stop "$FLOOR_PID"
  if [ "${ONLY:-}" = side ]; then stop "$MAIN"; continue; fi

  # e: the 1% revoke mix beside the same load without revocations, alternating;
  # each mix round revokes 1% of its requests, so each gets fresh tokens.
  for round in $(seq 1 2); do
    python3 scripts/bench_helper.py issue http://127.0.0.1:18080 "$COOKIE" 1500 "$WORK/mix.txt" "mix$round"
    RUN_DUR=$AB_DUR wrk_run "e_read_only" http://127.0.0.1:18080/api scripts/wrk/mix.lua TOKENS="$WORK/mix.txt" COOKIE="$COOKIE" REVOKE_EVERY=0
    RUN_DUR=$AB_DUR wrk_run "e_mix_1pct_revoke" http://127.0.0.1:18080/api scripts/wrk/mix.lua TOKENS="$WORK/mix.txt" COOKIE="$COOKIE" REVOKE_EVERY=100
  done
  say "$BACKEND peak_rss_kib=$(rss_kib "$MAIN" VmHWM)"

  # Revocation propagation: revoke on one process, time until the other refuses.
  start_server 18081 "$DB"
  SECOND=$SERVER_PID
  line=$(python3 scripts/bench_helper.py propagation http://127.0.0.1:18080 http://127.0.0.1:18081 "$COOKIE" 100)
  say "$BACKEND propagation ${line#RESULT }"
  stop "$SECOND"
  stop "$MAIN"

  # 1,000,000 issued tokens in the database: idle RSS and RSS under load.
  if [ "$BACKEND" = sqlite ]; then
    python3 - "$WORK/bench.db" <<'PY'
import sqlite3, sys
db = sqlite3.connect(sys.argv[1])
uid, created = db.execute("SELECT user_id, created_at FROM access_tokens LIMIT 1").fetchone()
db.execute("""WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM n WHERE i < 1000000)
  INSERT INTO access_tokens (id, user_id, name, digest, scopes, created_at, expires_at, "grant")
  SELECT 'bulk-' || i, ?, 'bulk-' || i, randomblob(32), 'me:read', ?, ?, 'api' FROM n""", (uid, created, created))
db.commit()
PY
  else
    psql -q "$DB" -c "INSERT INTO access_tokens (id, user_id, name, digest, scopes, created_at, expires_at, \"grant\")
      SELECT 'bulk-' || g, (SELECT id FROM users WHERE role = 'admin' LIMIT 1), 'bulk-' || g,
             sha256(('bulk' || g)::bytea), 'me:read', now(), now() + interval '30 days', 'api'
      FROM generate_series(1, 1000000) g" >/dev/null
  fi
  t0=$(ms_now)
  start_server 18080 "$DB"
  t1=$(ms_now)
  MAIN=$SERVER_PID
  sleep 1
  check_token 18080 "$(head -n1 "$WORK/tokens.txt")"
  say "$BACKEND with_1M_tokens cold_start_to_readyz_ms=$((t1 - t0)) idle_rss_kib=$(rss_kib "$MAIN" VmRSS)"
  wrk_run "b_bearer_with_1M_tokens_in_db" http://127.0.0.1:18080/api scripts/wrk/bearer.lua TOKENS="$WORK/tokens.txt"
  say "$BACKEND with_1M_tokens peak_rss_kib=$(rss_kib "$MAIN" VmHWM)"
  stop "$MAIN"
done

echo "== summary"
python3 - "$RESULTS" <<'PY' | tee -a "$RESULTS"
import re, statistics, sys
rows = [l.split() for l in open(sys.argv[1]) if l.strip()]
def field(r, k):
    m = re.search(k + r"=(\S+)", " ".join(r))
    return float(m.group(1)) if m else None
def runs(backend, label):
    return [r for r in rows if r[0] == backend and r[1] == label]
for backend in ("sqlite", "postgres"):
    for name, over in (("bearer_id", "f"), ("bearer_id", "a"), ("bearer_id_email_role", "f"), ("cookie_id", "f")):
        x, y = runs(backend, f"{name}_{over}"), runs(backend, f"{name}_b")
        if not x or not y:
            continue
        rx, ry = [field(r, "rps") for r in x], [field(r, "rps") for r in y]
        px, py = [field(r, "p99_ms") for r in x], [field(r, "p99_ms") for r in y]
        print(f"SUMMARY {backend} {name} tokengate/{'floor' if over == 'f' else 'baseline'}: "
              f"throughput {sum(ry) / sum(rx):.3f} (rounds {' '.join(f'{b / a:.2f}' for a, b in zip(rx, ry))}) "
              f"median_rps {statistics.median(rx):.0f} -> {statistics.median(ry):.0f} "
              f"p99 {statistics.median(py) / statistics.median(px):.2f} ({statistics.median(px):.2f} -> {statistics.median(py):.2f} ms)")
    ro, mx = runs(backend, "e_read_only"), runs(backend, "e_mix_1pct_revoke")
    if ro and mx:
        print(f"SUMMARY {backend} e mix/read_only throughput {sum(field(r, 'rps') for r in mx) / sum(field(r, 'rps') for r in ro):.3f}")
PY
