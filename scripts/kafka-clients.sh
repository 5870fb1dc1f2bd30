#!/usr/bin/env bash
# Drives Strata's kafka front with real Kafka clients: kcat (apt; librdkafka) and
# kafka-python (pip). Covers produce and consume with keys, a consumer group of three
# members rebalancing when one leaves, two groups reading one topic independently, replay
# from a timestamp, and a compacted topic.
#
#   sudo scripts/kafka-clients.sh
set -euo pipefail
cd "$(dirname "$0")/.."

command -v kcat >/dev/null || { apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq kcat; }
python3 -c 'import kafka' 2>/dev/null || pip install -q kafka-python

cargo build --release -p strata
work=$(mktemp -d)
trap 'kill $(cat "$work/pid" 2>/dev/null) 2>/dev/null || true; rm -rf "$work"' EXIT
STRATA_HTTP_LISTEN=127.0.0.1:18091 STRATA_KAFKA_LISTEN=127.0.0.1:19092 STRATA_S3_ENABLED=false \
    STRATA_SQS_ENABLED=false STRATA_PG_ENABLED=false STRATA_RESP_ENABLED=false \
    STRATA_STREAM_MAINTENANCE_INTERVAL_MS=500 \
    target/release/strata serve --data-dir "$work/data" >"$work/log" 2>&1 &
echo $! >"$work/pid"
for _ in $(seq 100); do curl -fs localhost:18091/health >/dev/null && break; sleep 0.1; done
B=127.0.0.1:19092
check() { echo "ok: $*"; }
fail() { echo "FAILED: $*" >&2; exit 1; }

# kcat: produce keyed records (auto-creating the topic), read them back with keys.
printf 'alice:10\nbob:20\nalice:5\n' | kcat -b $B -P -t likes -K: -z snappy
out=$(kcat -b $B -C -t likes -o beginning -e -q -f '%k=%s@%o\n')
[ "$out" = $'alice=10@0\nbob=20@1\nalice=5@2' ] && check "kcat produce and consume with keys" || fail "kcat produce and consume with keys"
kcat -b $B -L -t likes | grep -q 'partition 0, leader 0' && check "kcat metadata" || fail "kcat metadata"
kcat -b $B -C -t likes -o -1 -e -q -f '%s\n' | grep -qx 5 && check "kcat reads from the end (-o -1)" || fail "kcat reads from the end (-o -1)"
python3 - "$B" <<'EOF'
import sys, time, threading
from kafka import KafkaProducer, KafkaConsumer, KafkaAdminClient, TopicPartition
from kafka.admin import NewTopic, ConfigResource, ConfigResourceType
B = sys.argv[1]
def ok(msg): print("ok:", msg)

admin = KafkaAdminClient(bootstrap_servers=B)
admin.create_topics([NewTopic("orders", num_partitions=6, replication_factor=1),
                     NewTopic("balances", num_partitions=1, replication_factor=1,
                              topic_configs={"cleanup.policy": "compact", "segment.bytes": "1024"})])
assert "orders" in admin.list_topics()
configs = admin.describe_configs([ConfigResource(ConfigResourceType.TOPIC, "balances")])
ok("kafka-python admin: create topics, list, describe configs")

producer = KafkaProducer(bootstrap_servers=B, acks="all", compression_type="gzip")
for i in range(600):
    producer.send("orders", key=f"customer-{i % 50}".encode(), value=f"order-{i}".encode())
producer.flush()
ok("kafka-python producer, acks=all, gzip, 600 keyed records on 6 partitions")

# A group of three members: each gets two partitions; when one leaves, the other two take over.
seen = {}
lock = threading.Lock()
stop = threading.Event()
def member(name, leave_after=None):
    c = KafkaConsumer("orders", bootstrap_servers=B, group_id="billing", auto_offset_reset="earliest",
                      enable_auto_commit=True, auto_commit_interval_ms=200, session_timeout_ms=6000,
                      heartbeat_interval_ms=500, client_id=name)
    started = time.time()
    while not stop.is_set():
        for tp, records in c.poll(timeout_ms=200).items():
            with lock:
                for r in records:
                    seen.setdefault(r.value, set()).add(name)
        if leave_after and time.time() - started > leave_after:
            break
    c.close()
threads = [threading.Thread(target=member, args=(f"m{i}", 4 if i == 0 else None)) for i in range(3)]
for t in threads: t.start()
deadline = time.time() + 30
while time.time() < deadline and len(seen) < 600:
    time.sleep(0.2)
assert len(seen) == 600, len(seen)
if hasattr(admin, "describe_groups"):  # kafka-python 3
    group = admin.describe_groups(["billing"])["billing"]
    state, members = group["group_state"], len(group["members"])
else:  # kafka-python 2
    group = admin.describe_consumer_groups(["billing"])[0]
    state, members = group.state, len(group.members)
assert state == "Stable" and members == 3, group
ok(f"consumer group of 3 ({state}, {members} members) consumed all 600 records")
time.sleep(5)  # m0 has left: the group rebalances to the two others
for i in range(600, 660):
    producer.send("orders", key=f"customer-{i % 50}".encode(), value=f"order-{i}".encode())
producer.flush()
deadline = time.time() + 30
while time.time() < deadline and len(seen) < 660:
    time.sleep(0.2)
stop.set()
for t in threads: t.join()
assert len(seen) == 660, len(seen)
late = {m for v, names in seen.items() if int(v.decode().split("-")[1]) >= 600 for m in names}
assert "m0" not in late and late, late
ok(f"after m0 left, {sorted(late)} took over its partitions")

# Another group reads the same topic from the start, independently.
c = KafkaConsumer("orders", bootstrap_servers=B, group_id="analytics", auto_offset_reset="earliest",
                  consumer_timeout_ms=3000)
assert len([r for r in c]) == 660
c.close()
ok("a second group reads all 660 records independently")

# Replay from a timestamp.
cut = int(time.time() * 1000)
time.sleep(0.05)
for i in range(5):
    producer.send("orders", key=b"replay", value=f"after-{i}".encode(), partition=0)
producer.flush()
c = KafkaConsumer(bootstrap_servers=B)
tp = TopicPartition("orders", 0)
c.assign([tp])
offset = c.offsets_for_times({tp: cut})[tp].offset
c.seek(tp, offset)
got = [r.value for r in c.poll(timeout_ms=3000, max_records=100).get(tp, [])]
assert got == [f"after-{i}".encode() for i in range(5)], got
ok("replay from a timestamp (offsets_for_times + seek)")

# A compacted topic keeps the latest value per key.
for round in range(30):
    for account in ("acct-1", "acct-2", "acct-3"):
        producer.send("balances", key=account.encode(), value=f"{round}".encode())
    producer.flush()
time.sleep(2)  # maintenance runs every 500 ms
c = KafkaConsumer("balances", bootstrap_servers=B, auto_offset_reset="earliest", consumer_timeout_ms=2000)
records = [(r.key, r.value) for r in c]
latest = dict(records)
assert latest == {b"acct-1": b"29", b"acct-2": b"29", b"acct-3": b"29"}, latest
assert len(records) < 90, len(records)
ok(f"compacted topic: {len(records)} of 90 records left, the latest per key")

from kafka.admin import NewPartitions
admin.create_partitions({"orders": NewPartitions(total_count=8)})
assert len(KafkaConsumer(bootstrap_servers=B).partitions_for_topic("orders")) == 8
admin.alter_configs([ConfigResource(ConfigResourceType.TOPIC, "orders", configs={"retention.ms": "3600000"})])
described = admin.describe_configs([ConfigResource(ConfigResourceType.TOPIC, "orders")])
assert "3600000" in str(described), described
ok("kafka-python admin: create partitions, alter and describe configs")
EOF

# kcat as a group member reads what the groups above did not touch.
kcat -b $B -G kcat-group likes -e -q -f '%s\n' -X auto.offset.reset=earliest 2>/dev/null | sort | tr '\n' ' ' | grep -q '10 20 5' && check "kcat -G consumer group" || fail "kcat -G consumer group"
echo "all kafka client checks passed"
