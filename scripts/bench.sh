#!/usr/bin/env bash
# Load benchmarks (issue 6): builds the release server and the no-guard baseline,
# runs them on SQLite and on PostgreSQL, and drives them with wrk from this same
# machine. Prints a summary and writes target/bench/results.txt.
#
#   scripts/bench.sh                 # DUR=10 AB_DUR=5 ROUNDS=6 CONNS=64 THREADS=2 NTOKENS=300
#
# Scenarios, each DUR seconds at CONNS connections:
#   a  baseline: the same schema, layers and response path with no guard
#      (benches/baseline_server.rs), sent the same Bearer requests as b
#   b  Bearer { me { id } } over NTOKENS distinct live tokens
#   c  cookie-authenticated { me { id } }
#   d  updateAccessToken throughput (cookie)
#   e  99% Bearer use, 1% revokeAccessToken
# a and b alternate (ROUNDS rounds), so their ratio is measured side by side.
# Then: revocation propagation between two processes (100 revocations), cold
# start to /readyz, idle RSS, and RSS with 1,000,000 tokens in the database.
set -euo pipefail
cd "$(dirname "$0")/.."

DUR=${DUR:-10}
# a and b alternate for ROUNDS rounds of AB_DUR seconds, the order flipping each
# round, so drift (SQLite's WAL growing, the machine's other load) hits both alike.
ROUNDS=${ROUNDS:-6}
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
cargo build --release --quiet
BASELINE=$(cargo bench --bench baseline_server --no-run --message-format=json 2>/dev/null |
  python3 -c 'import sys, json
for line in sys.stdin:
    m = json.loads(line)
    if m.get("reason") == "compiler-artifact" and m.get("executable") and m["target"]["name"] == "baseline_server":
        print(m["executable"])')
BIN=target/release/tokengate
OUT=target/bench
mkdir -p "$OUT"
RESULTS="$OUT/results.txt"
: > "$RESULTS"
WORK=$(mktemp -d)
PIDS=()
PG_DBS=()
cleanup() {
  for p in "${PIDS[@]}"; do kill "$p" 2>/dev/null || true; done
  wait 2>/dev/null || true
  for d in "${PG_DBS[@]}"; do psql -q "$PG_ADMIN" -c "DROP DATABASE IF EXISTS $d WITH (FORCE)" >/dev/null 2>&1 || true; done
  rm -rf "$WORK"
}
trap cleanup EXIT

say() { echo "$*" | tee -a "$RESULTS"; }
ms_now() { date +%s%3N; }

wait_ready() { # port
  for _ in $(seq 1 500); do
    curl -fs "http://127.0.0.1:$1/readyz" >/dev/null 2>&1 && return 0
    sleep 0.01
  done
  echo "server on $1 never became ready" >&2; exit 1
}

# start_server PORT DBURL -> sets SERVER_PID
start_server() {
  TOKENGATE_ADMIN_EMAIL=$EMAIL TOKENGATE_ADMIN_PASSWORD=$PASSWORD TOKENGATE_LOG=warn \
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

for BACKEND in sqlite postgres; do
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
  COOKIE=$(python3 scripts/bench_helper.py signin http://127.0.0.1:18080 "$EMAIL" "$PASSWORD")
  python3 scripts/bench_helper.py issue http://127.0.0.1:18080 "$COOKIE" "$NTOKENS" "$WORK/tokens-ids.txt"
  cut -d' ' -f2 "$WORK/tokens-ids.txt" > "$WORK/tokens.txt"
  "$BASELINE" 127.0.0.1:18090 "$DB" >"$WORK/baseline.log" 2>&1 &
  BASE_PID=$!
  PIDS+=("$BASE_PID")
  sleep 1
  say "$BACKEND idle_rss_kib=$(rss_kib "$MAIN" VmRSS)"

  # Same script (same client-side cost per request) for both; a ignores the header.
  run_a() { RUN_DUR=$AB_DUR wrk_run "a_baseline_no_guard" http://127.0.0.1:18090/api scripts/wrk/bearer.lua TOKENS="$WORK/tokens.txt"; }
  run_b() { RUN_DUR=$AB_DUR wrk_run "b_bearer_${NTOKENS}_tokens" http://127.0.0.1:18080/api scripts/wrk/bearer.lua TOKENS="$WORK/tokens.txt"; }
  for round in $(seq 1 "$ROUNDS"); do
    if [ $((round % 2)) -eq 1 ]; then run_a; run_b; else run_b; run_a; fi
  done
  wrk_run "c_cookie" http://127.0.0.1:18080/api scripts/wrk/me.lua COOKIE="$COOKIE"
  wrk_run "d_update_access_token" http://127.0.0.1:18080/api scripts/wrk/issue.lua COOKIE="$COOKIE"
  python3 scripts/bench_helper.py issue http://127.0.0.1:18080 "$COOKIE" 2000 "$WORK/mix.txt" mix
  wrk_run "e_mix_1pct_revoke" http://127.0.0.1:18080/api scripts/wrk/mix.lua TOKENS="$WORK/mix.txt" COOKIE="$COOKIE"
  say "$BACKEND peak_rss_kib=$(rss_kib "$MAIN" VmHWM)"
  stop "$BASE_PID"

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
for backend in ("sqlite", "postgres"):
    a = [r for r in rows if r[0] == backend and r[1] == "a_baseline_no_guard"]
    b = [r for r in rows if r[0] == backend and r[1].startswith("b_bearer_") and "1M" not in r[1]]
    if not a or not b:
        continue
    ra, rb = [field(r, "rps") for r in a], [field(r, "rps") for r in b]
    pa, pb = [field(r, "p99_ms") for r in a], [field(r, "p99_ms") for r in b]
    print(f"SUMMARY {backend} throughput_ratio_b_over_a={sum(rb) / sum(ra):.3f} "
          f"median_rps_a={statistics.median(ra):.0f} median_rps_b={statistics.median(rb):.0f} "
          f"p99_ratio_b_over_a={statistics.median(pb) / statistics.median(pa):.2f} "
          f"per_round_ratios={','.join(f'{y / x:.2f}' for x, y in zip(ra, rb))}")
PY
