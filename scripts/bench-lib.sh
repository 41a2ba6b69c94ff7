# Sourced by the bench scripts (bench.sh, bench-writes.sh, bench-gateway.sh):
# a work directory, and on exit the processes in PIDS stopped, the
# PostgreSQL databases in PG_DBS dropped (through PG_ADMIN) and the work
# directory removed; wait_ready PORT waits for a server's /readyz.
PG_ADMIN=${PG_ADMIN:-postgres://postgres@127.0.0.1:5432/postgres}
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

wait_ready() { # PORT
  for _ in $(seq 1 500); do
    curl -fs "http://127.0.0.1:$1/readyz" >/dev/null 2>&1 && return 0
    sleep 0.01
  done
  echo "server on $1 never became ready" >&2; return 1
}
