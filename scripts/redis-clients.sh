#!/usr/bin/env bash
# Drives Strata's resp front with real Redis client libraries beyond the `redis` crate of the
# tests: redis-py (pip) on streams and consumer groups in RESP2 and RESP3, and BullMQ (npm),
# whose Lua scripts use streams, cmsgpack and sorted sets for jobs, retries, delayed jobs and
# queue events.
#
#   sudo scripts/redis-clients.sh         # builds Strata (release), runs it on spare ports
#
# Every step checks its result; the script stops at the first failure.
set -euo pipefail
cd "$(dirname "$0")/.."

command -v node >/dev/null || { apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq nodejs npm; }
python3 -c 'import redis' 2>/dev/null || pip install -q redis

cargo build --release -p strata
work=$(mktemp -d)
trap 'kill $(cat "$work/pid" 2>/dev/null) 2>/dev/null || true; rm -rf "$work"' EXIT
PORT=16479
STRATA_RESP_LISTEN=127.0.0.1:$PORT STRATA_HTTP_ENABLED=false STRATA_PG_ENABLED=false \
    STRATA_S3_ENABLED=false STRATA_SQS_ENABLED=false STRATA_KAFKA_ENABLED=false STRATA_ES_ENABLED=false \
    target/release/strata serve --data-dir "$work/data" >"$work/log" 2>&1 &
echo $! >"$work/pid"
for _ in $(seq 100); do python3 -c "import redis; redis.Redis(port=$PORT).ping()" 2>/dev/null && break; sleep 0.1; done

echo "redis-py: streams and consumer groups"
python3 - "$PORT" <<'PY'
import sys, threading, time
import redis

port = int(sys.argv[1])
for protocol in (2, 3):
    r = redis.Redis(port=port, protocol=protocol, decode_responses=True)
    r.flushall()
    for i in range(5):
        r.xadd("orders", {"item": f"book{i}", "qty": i})
    r.xadd("orders", {"item": "last"}, maxlen=3, approximate=False)
    assert r.xlen("orders") == 3
    assert [f["item"] for _, f in r.xrange("orders", count=2)] == ["book3", "book4"]
    r.xgroup_create("orders", "shipping", id="0")
    got = r.xreadgroup("shipping", "w1", {"orders": ">"}, count=2)
    entries = got[0][1] if protocol == 2 else got["orders"][0]
    assert len(entries) == 2, got
    pending = r.xpending_range("orders", "shipping", min="-", max="+", count=10)
    assert [p["consumer"] for p in pending] == ["w1", "w1"], pending
    assert r.xack("orders", "shipping", pending[0]["message_id"]) == 1
    assert len(r.xautoclaim("orders", "shipping", "w2", min_idle_time=0, start_id="0-0", justid=True)) == 1
    groups = r.xinfo_groups("orders")
    assert [(g["name"], g["pending"], g["lag"]) for g in groups] == [("shipping", 1, 1)], groups
    result = {}
    def reader():
        result["got"] = redis.Redis(port=port, protocol=protocol, decode_responses=True).xread({"events": "$"}, block=3000)
    t = threading.Thread(target=reader)
    t.start()
    time.sleep(0.2)
    r.xadd("events", {"k": "v"}, id="7-0")
    t.join()
    got = result["got"]
    assert (got[0][1] if protocol == 2 else got["events"][0]) == [("7-0", {"k": "v"})], got
    print(f"ok: redis-py RESP{protocol}")
PY

echo "BullMQ: jobs, retries, a delayed job and queue events"
mkdir -p "$work/bull" && cd "$work/bull"
npm install --silent bullmq@5 >/dev/null 2>&1
cat >bull.mjs <<'JS'
import { Queue, Worker, QueueEvents } from 'bullmq';
const connection = { host: '127.0.0.1', port: Number(process.argv[2]) };
const queue = new Queue('jobs', { connection });
const events = new QueueEvents('jobs', { connection });
await events.waitUntilReady();
let completedEvents = 0;
events.on('completed', () => { completedEvents++; });
const results = [];
const worker = new Worker('jobs', async job => {
  if (job.data.fail && job.attemptsMade < 1) throw new Error('the first try fails');
  return job.data.n * 2;
}, { connection, concurrency: 4 });
worker.on('completed', (job, result) => results.push(result));
for (let n = 0; n < 20; n++) await queue.add('double', { n, fail: n % 5 === 0 }, { attempts: 2, backoff: 10 });
await queue.add('later', { n: 100 }, { delay: 300 });
const deadline = Date.now() + 15000;
while ((results.length < 21 || completedEvents < 21) && Date.now() < deadline) await new Promise(r => setTimeout(r, 50));
const counts = await queue.getJobCounts();
const sum = results.reduce((a, b) => a + b, 0);
await worker.close(); await events.close(); await queue.close();
if (results.length !== 21 || sum !== 580 || completedEvents !== 21 || counts.completed !== 21 || counts.failed !== 0) {
  console.error('FAILED:', results.length, sum, completedEvents, JSON.stringify(counts));
  process.exit(1);
}
console.log('ok: BullMQ', JSON.stringify(counts));
process.exit(0);
JS
node bull.mjs "$PORT"
