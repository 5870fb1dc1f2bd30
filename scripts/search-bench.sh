#!/usr/bin/env bash
# Indexes the same real text corpus (this machine's man pages, 100k sections) into Strata's
# es front, PostgreSQL 15 full-text search (tsvector + GIN, fsync on) and SQLite FTS5 (WAL),
# then runs the same 1,000 queries on each and prints indexing docs/s and query p50/p99
# with Strata's ratio to the better of the two (scripts/search-bench.py does the work).
#
# Usage: sudo scripts/search-bench.sh [DOCS=100000]
# Needs root (to install PostgreSQL 15 with apt and run it as the postgres user).
set -euo pipefail
DOCS=${1:-100000}
ROOT=$(cd "$(dirname "$0")/.." && pwd)
WORK=$(mktemp -d /tmp/strata-search-bench.XXXXXX)
chmod 755 "$WORK" && chown postgres "$WORK" 2>/dev/null || true
PG_PORT=55441
ES_PORT=59201

if ! ls /usr/lib/postgresql/15/bin/postgres >/dev/null 2>&1; then
  apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq postgresql-15 >/dev/null
fi
BIN=/usr/lib/postgresql/15/bin
venv=${STRATA_VENV:-/tmp/strata-bench-venv}
[ -x "$venv/bin/python" ] || python3 -m venv "$venv"
"$venv/bin/python" -c 'import psycopg' 2>/dev/null || "$venv/bin/pip" install -q 'psycopg[binary]>=3.1'

cleanup() {
  su postgres -c "$BIN/pg_ctl -D $WORK/pg -m immediate stop" >/dev/null 2>&1 || true
  [ -n "${STRATA_PID:-}" ] && kill "$STRATA_PID" 2>/dev/null || true
  rm -rf "$WORK"
}
trap cleanup EXIT

echo "building strata (release)..."
(cd "$ROOT" && cargo build --release -q -p strata)
su postgres -c "$BIN/initdb -D $WORK/pg -U postgres --auth=trust" >/dev/null
su postgres -c "$BIN/pg_ctl -D $WORK/pg -o '-p $PG_PORT -k $WORK -c listen_addresses=127.0.0.1 -c maintenance_work_mem=1GB -c shared_buffers=1GB' -l $WORK/pg.log start" >/dev/null
STRATA_ES_LISTEN=127.0.0.1:$ES_PORT STRATA_HTTP_ENABLED=false STRATA_PG_ENABLED=false STRATA_RESP_ENABLED=false \
  STRATA_S3_ENABLED=false STRATA_SQS_ENABLED=false STRATA_KAFKA_ENABLED=false RUST_LOG=warn \
  "$ROOT/target/release/strata" serve --data-dir "$WORK/strata" >"$WORK/strata.log" 2>&1 &
STRATA_PID=$!
for _ in $(seq 100); do curl -fs "127.0.0.1:$ES_PORT/" >/dev/null && break; sleep 0.1; done
"$venv/bin/python" "$ROOT/scripts/search-bench.py" "127.0.0.1:$ES_PORT" \
  "host=127.0.0.1 port=$PG_PORT user=postgres dbname=postgres" "$WORK/sqlite.db" "$DOCS"
