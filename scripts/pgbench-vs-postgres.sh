#!/usr/bin/env bash
# Runs the same pgbench custom scripts against a throwaway PostgreSQL 15 (fsync on) and
# Strata (durable, sync = "always"), side by side, and prints TPS, p99 latency, the server's
# CPU time per transaction and the Strata/PostgreSQL ratio for:
#   (a) point SELECT by primary key on ROWS rows,
#   (b) a TPC-B-like transaction (3 UPDATEs, a SELECT, an INSERT in BEGIN/COMMIT),
# each with `pgbench -n -M simple` and `-M prepared`. Tables are created and filled with
# plain SQL (multi-row INSERTs) on both.
#
# Usage: scripts/pgbench-vs-postgres.sh [ROWS=1000000] [SECONDS=20] [CLIENTS=8] [ROUNDS=3]
# Each row runs ROUNDS times, alternating PostgreSQL and Strata (A B A B ...), and prints
# the medians of each column; the ratio is of the median TPS.
# ISOLATION (default "read committed", PostgreSQL's default) is the default transaction
# isolation of both servers ("repeatable read" and "serializable" also work).
# Serialization failures are retried (pgbench --max-tries) and counted.
# SCRIPTS (default "select tpcb") and MODES (default "simple prepared") pick the rows to run.
# Scheduler autogroups are turned off for the run (see AUTOGROUP below).
# Needs root (to install PostgreSQL 15 with apt and run it as the postgres user).
set -euo pipefail
ROWS=${1:-1000000}
SECONDS_PER_RUN=${2:-20}
CLIENTS=${3:-8}
ROUNDS=${4:-3}
ROOT=$(cd "$(dirname "$0")/.." && pwd)
WORK=$(mktemp -d /tmp/strata-pgbench.XXXXXX)
chmod 755 "$WORK" && chown postgres "$WORK"
PG_PORT=55433
ISOLATION=${ISOLATION:-read committed}
STRATA_PORT=55434

if ! ls /usr/lib/postgresql/15/bin/pgbench /usr/bin/time >/dev/null 2>&1; then
  apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq postgresql-15 postgresql-client-15 time >/dev/null
fi
BIN=/usr/lib/postgresql/15/bin
PSQL="$BIN/psql -q -v ON_ERROR_STOP=1"

# PostgreSQL calls setsid() in every backend, so with the kernel's autogroup scheduling each
# backend is a scheduling group of its own: 8 backends outweigh pgbench 8:1 for the CPU,
# while a one-process server's threads share one group (as any server's processes do in a
# systemd unit's cgroup). Measured with autogroup off, every thread and process of pgbench
# and both servers is a peer. AUTOGROUP=keep leaves the machine's setting alone.
AUTOGROUP_WAS=$(cat /proc/sys/kernel/sched_autogroup_enabled 2>/dev/null || echo)
if [ "${AUTOGROUP:-off}" = off ] && [ -n "$AUTOGROUP_WAS" ]; then
  echo 0 >/proc/sys/kernel/sched_autogroup_enabled
fi

cleanup() {
  [ -n "$AUTOGROUP_WAS" ] && echo "$AUTOGROUP_WAS" >/proc/sys/kernel/sched_autogroup_enabled || true
  su postgres -c "$BIN/pg_ctl -D $WORK/pg -m immediate stop" >/dev/null 2>&1 || true
  [ -n "${STRATA_PID:-}" ] && kill "$STRATA_PID" 2>/dev/null || true
  rm -rf "$WORK"
}
trap cleanup EXIT

echo "building strata (release)..."
(cd "$ROOT" && cargo build --release -q -p strata)

mkdir -p "$WORK/pg" && chown postgres "$WORK/pg"
su postgres -c "$BIN/initdb -D $WORK/pg -A trust -U postgres" >/dev/null
su postgres -c "$BIN/pg_ctl -D $WORK/pg -o '-p $PG_PORT -k $WORK -c fsync=on -c synchronous_commit=on -c max_connections=50' -l $WORK/pg.log start" >/dev/null

$PSQL -h 127.0.0.1 -p $PG_PORT -U postgres -c "ALTER SYSTEM SET default_transaction_isolation = '$ISOLATION'" -c "SELECT pg_reload_conf()" >/dev/null
# In a session of its own, as pg_ctl starts PostgreSQL (this matters with AUTOGROUP=keep).
STRATA_SQL_DEFAULT_ISOLATION="$ISOLATION" STRATA_PG_LISTEN=127.0.0.1:$STRATA_PORT STRATA_HTTP_ENABLED=false RUST_LOG=warn \
  setsid "$ROOT/target/release/strata" serve --data-dir "$WORK/strata" >"$WORK/strata.log" 2>&1 &
STRATA_PID=$!
sleep 1

# Schema and data, as plain SQL both servers run.
cat >"$WORK/schema.sql" <<SQL
CREATE TABLE accounts (aid INT PRIMARY KEY, bid INT, abalance INT, filler TEXT);
CREATE TABLE branches (bid INT PRIMARY KEY, bbalance INT, filler TEXT);
CREATE TABLE tellers (tid INT PRIMARY KEY, bid INT, tbalance INT, filler TEXT);
CREATE TABLE history (tid INT, bid INT, aid INT, delta INT, mtime TIMESTAMP, filler TEXT);
SQL
python3 - "$ROWS" >"$WORK/data.sql" <<'PY'
import sys
rows = int(sys.argv[1])
branches = max(1, rows // 100000)
print("INSERT INTO branches VALUES " + ", ".join(f"({b}, 0, '')" for b in range(1, branches + 1)) + ";")
print("INSERT INTO tellers VALUES " + ", ".join(f"({t}, {(t - 1) // 10 + 1}, 0, '')" for t in range(1, branches * 10 + 1)) + ";")
for start in range(1, rows + 1, 1000):
    end = min(rows, start + 999)
    print("INSERT INTO accounts VALUES " + ", ".join(f"({a}, {(a - 1) // 100000 + 1}, 0, '')" for a in range(start, end + 1)) + ";")
PY
BRANCHES=$(( ROWS / 100000 > 0 ? ROWS / 100000 : 1 ))

cat >"$WORK/select.sql" <<SQL
\set aid random(1, $ROWS)
SELECT abalance FROM accounts WHERE aid = :aid;
SQL
cat >"$WORK/tpcb.sql" <<SQL
\set aid random(1, $ROWS)
\set bid random(1, $BRANCHES)
\set tid random(1, $(( BRANCHES * 10 )))
\set delta random(-5000, 5000)
BEGIN;
UPDATE accounts SET abalance = abalance + :delta WHERE aid = :aid;
SELECT abalance FROM accounts WHERE aid = :aid;
UPDATE tellers SET tbalance = tbalance + :delta WHERE tid = :tid;
UPDATE branches SET bbalance = bbalance + :delta WHERE bid = :bid;
INSERT INTO history (tid, bid, aid, delta, mtime) VALUES (:tid, :bid, :aid, :delta, CURRENT_TIMESTAMP);
END;
SQL

load() { # name port user
  local start=$(date +%s)
  $PSQL -h 127.0.0.1 -p "$2" -U "$3" -d "$4" -f "$WORK/schema.sql"
  $PSQL -h 127.0.0.1 -p "$2" -U "$3" -d "$4" -f "$WORK/data.sql"
  echo "$1: loaded $ROWS accounts in $(( $(date +%s) - start ))s"
}
load postgres $PG_PORT postgres postgres
load strata $STRATA_PORT strata strata

# Busy CPU time of the whole machine, in clock ticks.
busy_ticks() { awk '/^cpu /{print $2+$3+$4+$7+$8}' /proc/stat; }

run() { # port user db script mode -> "tps p99_ms server_us_per_tx"
  local log="$WORK/log.$RANDOM"
  mkdir -p "$log"
  local before=$(busy_ticks)
  (cd "$log" && /usr/bin/time -f "%U %S" -o "$log/pgbench_cpu" $BIN/pgbench -n -M "$5" --max-tries=1000 -c "$CLIENTS" -j 2 -T "$SECONDS_PER_RUN" -l -h 127.0.0.1 -p "$1" -U "$2" "$3" -f "$WORK/$4" >"$log/out" 2>&1) || { cat "$log/out" >&2; echo "0 0 0"; return; }
  local after=$(busy_ticks)
  local tps=$(grep -E "^tps" "$log/out" | head -1 | awk '{print $3}')
  grep -E "failed|retried" "$log/out" | sed "s/^/    [$1 $4 $5] /" >&2 || true
  local p99=$(cat "$log"/pgbench_log.* | awk '{print $3}' | sort -n | awk '{a[NR]=$1} END {i=int(NR*0.99); if (i<1) i=1; printf "%.2f", a[i]/1000}')
  # The server's CPU per transaction: the machine's busy time less pgbench's own. Steadier
  # than TPS on a shared VM, whose CPU share comes and goes.
  local txs=$(grep -E "^number of transactions actually processed" "$log/out" | awk '{print $NF}' | cut -d/ -f1)
  local us=$(python3 -c "print(f'{(($after - $before) / $(getconf CLK_TCK) - sum(map(float, open(\"$log/pgbench_cpu\").read().split()))) * 1e6 / max(1, $txs):.1f}')")
  echo "$tps $p99 $us"
}

# The median of each column of "tps p99 us" lines.
medians() {
  python3 -c '
import sys, statistics
rows = [list(map(float, l.split())) for l in sys.stdin if l.strip()]
print(" ".join(f"{statistics.median(c):.2f}" if i else f"{statistics.median(c):.0f}" for i, c in enumerate(zip(*rows))))'
}

printf "\n%-22s %-9s %10s %9s %9s %10s %9s %9s %6s\n" workload mode pg_tps pg_p99ms pg_us/tx strata_tps st_p99ms st_us/tx ratio
for script in ${SCRIPTS:-select tpcb}; do
  for mode in ${MODES:-simple prepared}; do
    pg_runs=() st_runs=()
    for _ in $(seq "$ROUNDS"); do
      pg_runs+=("$(run $PG_PORT postgres postgres $script.sql $mode)")
      st_runs+=("$(run $STRATA_PORT strata strata $script.sql $mode)")
    done
    read -r pg_tps pg_p99 pg_us < <(printf "%s\n" "${pg_runs[@]}" | medians)
    read -r st_tps st_p99 st_us < <(printf "%s\n" "${st_runs[@]}" | medians)
    ratio=$(python3 -c "print(f'{float($st_tps)/float($pg_tps):.2f}' if float($pg_tps) else 'n/a')")
    printf "%-22s %-9s %10.0f %9s %9s %10.0f %9s %9s %6s\n" "$script ($ROWS rows)" "$mode" "$pg_tps" "$pg_p99" "$pg_us" "$st_tps" "$st_p99" "$st_us" "$ratio"
  done
done
