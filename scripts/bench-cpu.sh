#!/usr/bin/env bash
# Ad hoc side-by-side CPU cost per request (used for BENCHMARKS.md, "The access
# log without a span per request"). Servers must already run, e.g. tokengate
# builds on one SQLite database and the floor (benches/floor_server.rs) on the
# same tokens, set up as scripts/bench.sh does (bench_helper.py signin/issue).
#
#   TOKENS=tokens.txt COOKIE=... scripts/bench-cpu.sh ROUNDS DUR PORT:LABEL...
#
# For each round, each target in rotating order: wrk -t2 -c64 for DUR seconds
# with scripts/wrk/bearer.lua, and the CPU the process listening on PORT used
# (utime + stime from /proc, 100 ticks a second) divided by the requests served.
set -euo pipefail
cd "$(dirname "$0")/.."
R=$1; D=$2; shift 2
T=("$@"); n=${#T[@]}
SCRIPT=${SCRIPT:-scripts/wrk/bearer.lua}
ticks() { awk '{print $14+$15}' "/proc/$1/stat"; }
for r in $(seq 1 "$R"); do for k in $(seq 0 $((n-1))); do
  t=${T[$(((r+k)%n))]}; port=${t%%:*}; label=${t#*:}
  pid=$(ss -ltnp "sport = :$port" | grep -o 'pid=[0-9]*' | head -1 | cut -d= -f2)
  a=$(ticks "$pid")
  l=$(TOKENS=$TOKENS COOKIE=${COOKIE:-} FIELDS=${FIELDS:-id} WRK_THREADS=2 wrk -t2 -c64 -d"${D}s" --latency -s "$SCRIPT" "http://127.0.0.1:$port/api" | grep RESULT)
  b=$(ticks "$pid")
  req=$(echo "$l" | grep -o 'requests=[0-9]*' | cut -d= -f2)
  rps=$(echo "$l" | grep -o 'rps=[0-9]*' | cut -d= -f2)
  echo "$label rps=$rps cpu_us_per_req=$(python3 -c "print(round(($b-$a)*10000/$req,1))")"
done; done
