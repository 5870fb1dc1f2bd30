#!/usr/bin/env bash
# Drives Strata's sqs front with real SQS clients: aws-cli (apt; Debian's 2.9 speaks the
# query protocol) and boto3 (pip; the JSON protocol). Covers send/receive/delete,
# visibility expiry and redelivery, a dead-letter queue after maxReceiveCount, a message
# move task back from it, FIFO order
# per group with two workers, deduplication, long polling and backpressure.
#
#   sudo scripts/sqs-clients.sh
set -euo pipefail
cd "$(dirname "$0")/.."

if [ ! -x /usr/bin/aws ]; then
    apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq awscli
fi
python3 -c 'import boto3' 2>/dev/null || pip install -q boto3

cargo build --release -p strata
work=$(mktemp -d)
trap 'kill $(cat "$work/pid" 2>/dev/null) 2>/dev/null || true; rm -rf "$work"' EXIT
STRATA_HTTP_LISTEN=127.0.0.1:18090 STRATA_SQS_LISTEN=127.0.0.1:19334 STRATA_S3_ENABLED=false \
    STRATA_PG_ENABLED=false STRATA_RESP_ENABLED=false STRATA_QUEUE_MAX_DEPTH=50 \
    target/release/strata serve --data-dir "$work/data" >"$work/log" 2>&1 &
echo $! >"$work/pid"
for _ in $(seq 100); do curl -fs localhost:18090/health >/dev/null && break; sleep 0.1; done

export AWS_ACCESS_KEY_ID=strata AWS_SECRET_ACCESS_KEY=strata-secret AWS_DEFAULT_REGION=us-east-1
export AWS_EC2_METADATA_DISABLED=true
EP="http://127.0.0.1:19334"
aws() { /usr/bin/aws --endpoint-url "$EP" "$@"; }
check() { echo "ok: $*"; }
fail() { echo "FAILED: $*" >&2; exit 1; }

url=$(aws sqs create-queue --queue-name cli --query QueueUrl --output text)
aws sqs send-message --queue-url "$url" --message-body "hello" >/dev/null
handle=$(aws sqs receive-message --queue-url "$url" --query 'Messages[0].ReceiptHandle' --output text)
aws sqs delete-message --queue-url "$url" --receipt-handle "$handle"
[ "$(aws sqs get-queue-attributes --queue-url "$url" --attribute-names All \
    --query 'Attributes.ApproximateNumberOfMessagesNotVisible' --output text)" = 0 ] && check "aws sqs send/receive/delete" || fail "aws sqs send/receive/delete"
aws sqs list-queues --query 'QueueUrls[0]' --output text | grep -q cli && check "aws sqs list-queues" || fail "aws sqs list-queues"
python3 - "$EP" <<'EOF'
import sys, time, threading, boto3
sqs = boto3.client("sqs", endpoint_url=sys.argv[1], region_name="us-east-1",
                   aws_access_key_id="strata", aws_secret_access_key="strata-secret")
def ok(what): print("ok:", what)

q = sqs.create_queue(QueueName="jobs", Attributes={"VisibilityTimeout": "1"})["QueueUrl"]
sqs.send_message(QueueUrl=q, MessageBody="job", MessageAttributes={"n": {"DataType": "Number", "StringValue": "7"}})
m = sqs.receive_message(QueueUrl=q, MessageAttributeNames=["All"])["Messages"][0]
assert m["MessageAttributes"]["n"]["StringValue"] == "7"
assert not sqs.receive_message(QueueUrl=q).get("Messages"), "hidden while in flight"
time.sleep(1.2)
again = sqs.receive_message(QueueUrl=q, AttributeNames=["ApproximateReceiveCount"])["Messages"][0]
assert again["Attributes"]["ApproximateReceiveCount"] == "2"
try:
    sqs.delete_message(QueueUrl=q, ReceiptHandle=m["ReceiptHandle"])
    raise SystemExit("the old receipt handle should be invalid")
except sqs.exceptions.ReceiptHandleIsInvalid:
    pass
sqs.delete_message(QueueUrl=q, ReceiptHandle=again["ReceiptHandle"])
ok("visibility expiry, redelivery, stale receipt handle refused")

dlq = sqs.create_queue(QueueName="jobs-dead")["QueueUrl"]
arn = sqs.get_queue_attributes(QueueUrl=dlq, AttributeNames=["QueueArn"])["Attributes"]["QueueArn"]
w = sqs.create_queue(QueueName="work", Attributes={"VisibilityTimeout": "0",
        "RedrivePolicy": '{"deadLetterTargetArn":"%s","maxReceiveCount":"2"}' % arn})["QueueUrl"]
sqs.send_message(QueueUrl=w, MessageBody="poison")
for _ in range(3):
    sqs.receive_message(QueueUrl=w)
assert sqs.receive_message(QueueUrl=dlq, WaitTimeSeconds=1)["Messages"][0]["Body"] == "poison"
assert sqs.list_dead_letter_source_queues(QueueUrl=dlq)["queueUrls"] == [w]
ok("dead-letter queue after maxReceiveCount")

sqs.send_message_batch(QueueUrl=dlq, Entries=[{"Id": str(i), "MessageBody": f"parked {i}"} for i in range(10)])
handle = sqs.start_message_move_task(SourceArn=arn)["TaskHandle"]
for _ in range(100):
    task = sqs.list_message_move_tasks(SourceArn=arn, MaxResults=1)["Results"][0]
    if task["Status"] == "COMPLETED":
        break
    time.sleep(0.05)
assert task["TaskHandle"] == handle and task["Status"] == "COMPLETED", task
assert task["ApproximateNumberOfMessagesMoved"] == 10, task
try:
    sqs.cancel_message_move_task(TaskHandle=handle)
    raise SystemExit("cancelled a finished task")
except sqs.exceptions.ClientError as e:
    assert e.response["Error"]["Code"] == "ResourceNotFoundException", e.response
ok("message move task: redrive back to the source queue, listed, not cancellable once done")

f = sqs.create_queue(QueueName="orders.fifo", Attributes={"FifoQueue": "true", "ContentBasedDeduplication": "true"})["QueueUrl"]
for g in "AB":
    for i in range(20):
        sqs.send_message(QueueUrl=f, MessageBody=f"{g}{i}", MessageGroupId=g)
sqs.send_message(QueueUrl=f, MessageBody="A0", MessageGroupId="A")   # a duplicate
got = {"A": [], "B": []}
lock = threading.Lock()
def worker():
    idle = 0
    while idle < 3:
        ms = sqs.receive_message(QueueUrl=f, MaxNumberOfMessages=10, WaitTimeSeconds=1).get("Messages", [])
        idle = idle + 1 if not ms else 0
        for m in ms:
            with lock:
                got[m["Body"][0]].append(int(m["Body"][1:]))
            sqs.delete_message(QueueUrl=f, ReceiptHandle=m["ReceiptHandle"])
threads = [threading.Thread(target=worker) for _ in range(2)]
[t.start() for t in threads]; [t.join() for t in threads]
assert got["A"] == list(range(20)) and got["B"] == list(range(20)), got
ok("FIFO order per group with two workers, deduplication")

p = sqs.create_queue(QueueName="poll")["QueueUrl"]
threading.Timer(0.5, lambda: sqs.send_message(QueueUrl=p, MessageBody="late")).start()
t0 = time.time()
assert sqs.receive_message(QueueUrl=p, WaitTimeSeconds=10)["Messages"][0]["Body"] == "late"
ok(f"long poll woke after {time.time() - t0:.2f} s")

b = sqs.create_queue(QueueName="full")["QueueUrl"]
for i in range(5):
    sqs.send_message_batch(QueueUrl=b, Entries=[{"Id": str(j), "MessageBody": "x"} for j in range(10)])
from botocore.config import Config
strict = boto3.client("sqs", endpoint_url=sys.argv[1], region_name="us-east-1", aws_access_key_id="strata",
                      aws_secret_access_key="strata-secret", config=Config(retries={"max_attempts": 1}))
try:
    strict.send_message(QueueUrl=b, MessageBody="one too many")
    raise SystemExit("expected backpressure")
except strict.exceptions.ClientError as e:
    assert e.response["Error"]["Code"] == "ThrottlingException", e.response
ok("backpressure: ThrottlingException at queue.max_depth")

own = sqs.create_queue(QueueName="own-depth", Attributes={"MaximumDepth": "3"})["QueueUrl"]
sent = sqs.send_message_batch(QueueUrl=own, Entries=[{"Id": str(j), "MessageBody": "x"} for j in range(5)])
assert len(sent["Successful"]) == 3 and [f["Code"] for f in sent["Failed"]] == ["ThrottlingException"] * 2, sent
assert sqs.get_queue_attributes(QueueUrl=own, AttributeNames=["All"])["Attributes"]["MaximumDepth"] == "3"
ok("backpressure: a queue's own MaximumDepth attribute")
EOF
echo "all SQS client checks passed"
