#!/usr/bin/env bash
# Runs the same redis-benchmark load against a fresh redis-server (7.0 from apt, no
# persistence) and against Strata's resp front (cache.persistence = "none"), alternating
# A B A B A B, once without pipelining and once with -P 16, and prints for each command the
# median requests/s of each side, the ratio Strata/redis, and the median p99 latencies;
# then the geometric mean of the ratios.
#
# Usage: scripts/redis-benchmark-vs-redis.sh [REQUESTS=200000] [CLIENTS=50] [ROUNDS=3]
# Needs root the first time (apt-get install redis-server redis-tools).
set -euo pipefail
REQUESTS=${1:-200000}
CLIENTS=${2:-50}
ROUNDS=${3:-3}
TESTS=set,get,incr,lpush,lpop,sadd,hset,zadd
ROOT=$(cd "$(dirname "$0")/.." && pwd)
WORK=$(mktemp -d /tmp/strata-redisbench.XXXXXX)
REDIS_PORT=56379
STRATA_PORT=56380

if ! command -v redis-benchmark >/dev/null || ! command -v redis-server >/dev/null; then
  apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq redis-server redis-tools >/dev/null
fi

cleanup() {
  [ -n "${REDIS_PID:-}" ] && kill "$REDIS_PID" 2>/dev/null || true
  [ -n "${STRATA_PID:-}" ] && kill "$STRATA_PID" 2>/dev/null || true
  rm -rf "$WORK"
}
trap cleanup EXIT

echo "building strata (release)..."
(cd "$ROOT" && cargo build --release -q -p strata)

redis-server --port "$REDIS_PORT" --bind 127.0.0.1 --save "" --appendonly no --daemonize no \
  --dir "$WORK" >"$WORK/redis.log" 2>&1 &
REDIS_PID=$!
STRATA_RESP_LISTEN="127.0.0.1:$STRATA_PORT" STRATA_HTTP_ENABLED=false STRATA_PG_ENABLED=false \
  STRATA_LOG_LEVEL=warn "$ROOT/target/release/strata" serve --data-dir "$WORK/strata" >"$WORK/strata.log" 2>&1 &
STRATA_PID=$!
for port in "$REDIS_PORT" "$STRATA_PORT"; do
  for _ in $(seq 100); do
    redis-cli -p "$port" PING >/dev/null 2>&1 && break
    sleep 0.1
  done
done
echo "redis: $(redis-cli -p $REDIS_PORT INFO server | grep redis_version | tr -d '\r')"
echo "strata: $(redis-cli -p $STRATA_PORT INFO server | grep redis_version | tr -d '\r') (reported)"

for pipeline in 1 16; do
  for round in $(seq "$ROUNDS"); do
    for side in redis strata; do
      port=$REDIS_PORT
      [ "$side" = strata ] && port=$STRATA_PORT
      redis-cli -p "$port" FLUSHALL >/dev/null
      redis-benchmark -p "$port" -t "$TESTS" -n "$REQUESTS" -c "$CLIENTS" -P "$pipeline" --csv -q \
        >"$WORK/$side-P$pipeline-$round.csv"
    done
  done
done

python3 - "$WORK" "$ROUNDS" <<'PY'
import csv, math, statistics, sys, os
work, rounds = sys.argv[1], int(sys.argv[2])
def load(side, p):
    rows = {}
    for r in range(1, rounds + 1):
        with open(os.path.join(work, f"{side}-P{p}-{r}.csv")) as f:
            for row in csv.DictReader(f):
                name = row["test"].split()[0]
                rows.setdefault(name, []).append((float(row["rps"]), float(row["p99_latency_ms"])))
    return {k: (statistics.median(a for a, _ in v), statistics.median(b for _, b in v)) for k, v in rows.items()}
for p in (1, 16):
    redis, strata = load("redis", p), load("strata", p)
    print(f"\n-P {p}: median of {rounds} alternating runs")
    print(f"{'command':8} {'redis rps':>12} {'strata rps':>12} {'ratio':>7} {'redis p99':>10} {'strata p99':>11}")
    ratios = []
    for name, (rrps, rp99) in redis.items():
        srps, sp99 = strata.get(name, (0.0, float("nan")))
        ratio = srps / rrps if rrps else float("nan")
        ratios.append(ratio)
        print(f"{name:8} {rrps:12.0f} {srps:12.0f} {ratio:7.2f} {rp99:10.3f} {sp99:11.3f}")
    gm = math.exp(sum(math.log(r) for r in ratios if r > 0) / len(ratios))
    print(f"geometric mean ratio (strata/redis): {gm:.2f}")
PY
