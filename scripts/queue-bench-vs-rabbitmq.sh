#!/usr/bin/env bash
# Durable queue throughput: Strata's sqs front next to RabbitMQ (apt rabbitmq-server) in one
# run, with the same shape of workload (16 producers, 16 consumers, batches of ten 1 KiB
# messages, durable; see crates/fronts/sqs/benches/queue.rs): the most sustained rate (no
# backlog building up) and the rate with producers flat out, each system the same way.
#
#   sudo scripts/queue-bench-vs-rabbitmq.sh
set -euo pipefail
cd "$(dirname "$0")/.."
if ! command -v rabbitmq-server >/dev/null; then
    apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq rabbitmq-server
fi
# Listen on loopback only.
mkdir -p /etc/rabbitmq
printf 'listeners.tcp.default = 127.0.0.1:5672\nloopback_users = none\n' >/etc/rabbitmq/rabbitmq.conf
if ! rabbitmqctl status >/dev/null 2>&1; then
    (service rabbitmq-server start || rabbitmq-server -detached) >/dev/null 2>&1
    for _ in $(seq 60); do rabbitmqctl status >/dev/null 2>&1 && break; sleep 1; done
fi
rabbitmqctl status >/dev/null && echo "rabbitmq $(rabbitmqctl version 2>/dev/null) is up"
cargo bench -p strata-sqs --bench queue
