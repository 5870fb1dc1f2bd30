#!/usr/bin/env bash
# The gateway next to nginx and HAProxy: wrk -t2 -c64 -d15s for a 1 KiB response from a
# local nginx origin, (a) direct, (b) through nginx as a reverse proxy, (c) through
# HAProxy, (d) through Strata's proxy with routing only, (e) Strata with JWT auth, a rate
# limit and the access log on. The setups run in turn, ROUNDS times (A B C D E A B C D E ...),
# so a slow minute of this shared machine falls on all of them; prints the median
# requests/s, p50 and p99 of each and the ratios to nginx.
#
# Each proxy gets one worker thread, as nginx (worker_processes 1) and HAProxy (nbthread 1)
# do here, and runs as a process apart from the origin: wrk, the origin and the proxy share
# the two cores. STRATA_PROXY_WORKERS=0 in the
# environment runs Strata with its default (one per core) instead.
#
#   sudo scripts/gateway-bench.sh            # DURATION=15s CONNECTIONS=64 ROUNDS=3 by default
set -euo pipefail
cd "$(dirname "$0")/.."
DURATION=${DURATION:-15s}
CONNECTIONS=${CONNECTIONS:-64}
ROUNDS=${ROUNDS:-3}
export STRATA_PROXY_WORKERS=${STRATA_PROXY_WORKERS:-1}

need() { command -v "$1" >/dev/null || { apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "$2" >/dev/null; }; }
need nginx nginx
need haproxy haproxy
need wrk wrk
cargo build --release -p strata

work=$(mktemp -d)
chmod 755 "$work"  # nginx workers (nobody) read the 1 KiB file
cleanup() {
    for p in "$work"/*.pid; do kill "$(cat "$p")" 2>/dev/null || true; done
    for c in origin proxy; do nginx -p "$work" -c "$work/$c.conf" -s stop 2>/dev/null || true; done
    rm -rf "$work"
}
trap cleanup EXIT
head -c 1024 /dev/urandom | base64 -w0 | head -c 1024 >"$work/1k.txt"
# The origin and the nginx proxy are two nginx instances of one worker each, so that, as
# HAProxy and Strata are, the proxy is a process of its own: a proxied request wakes the
# origin's process, and wrk, the origin and the proxy share the two cores.
nginx_conf() { # name body
    cat >"$work/$1.conf" <<NGINX
worker_processes 1;
pid $work/$1.pid;
error_log $work/$1-error.log;
events { worker_connections 4096; }
http {
    access_log off;
    $2
}
NGINX
    nginx -p "$work" -c "$work/$1.conf"
}
nginx_conf origin "server { listen 127.0.0.1:18081; location / { root $work; try_files /1k.txt =404; } }"
nginx_conf proxy "upstream origin { server 127.0.0.1:18081; keepalive 128; }
    server { listen 127.0.0.1:18082;
             location / { proxy_pass http://origin; proxy_http_version 1.1; proxy_set_header Connection \"\"; } }"
cat >"$work/haproxy.cfg" <<HAP
global
    maxconn 4096
    nbthread 1
defaults
    mode http
    timeout connect 3s
    timeout client 30s
    timeout server 30s
    http-reuse always
frontend f
    bind 127.0.0.1:18083
    default_backend origin
backend origin
    server o1 127.0.0.1:18081
HAP
haproxy -f "$work/haproxy.cfg" -D -p "$work/haproxy.pid"

secret=bench-secret
cat >"$work/plain.toml" <<TOML
[[edge.routes]]
name = "origin"
upstreams = ["127.0.0.1:18081"]
TOML
cat >"$work/full.toml" <<TOML
[edge]
access_log = "$work/access.log"
[[edge.routes]]
name = "origin"
upstreams = ["127.0.0.1:18081"]
rate_limit = { key = "consumer", limit = "10000000/s" }
[edge.routes.auth.jwt]
secret = "$secret"
TOML
start_strata() { # name config proxy-port http-port
    (STRATA_PROXY_LISTEN=127.0.0.1:$3 STRATA_HTTP_LISTEN=127.0.0.1:$4 STRATA_PG_ENABLED=false STRATA_RESP_ENABLED=false \
        STRATA_S3_ENABLED=false STRATA_SQS_ENABLED=false STRATA_KAFKA_ENABLED=false STRATA_ES_ENABLED=false RUST_LOG=warn \
        target/release/strata serve --config "$2" --data-dir "$work/$1" >"$work/$1.log" 2>&1 & echo $! >"$work/$1.pid")
    for _ in $(seq 100); do curl -fs "localhost:$4/health" >/dev/null && return; sleep 0.1; done
    echo "strata $1 did not start"; cat "$work/$1.log"; exit 1
}
start_strata plain "$work/plain.toml" 18084 18094
start_strata full "$work/full.toml" 18085 18095
token=$(python3 - "$secret" <<'PY'
import base64, hashlib, hmac, json, sys, time
b = lambda d: base64.urlsafe_b64encode(json.dumps(d, separators=(",", ":")).encode()).rstrip(b"=")
msg = b({"alg": "HS256", "typ": "JWT"}) + b"." + b({"sub": "bench", "exp": int(time.time()) + 3600})
sig = base64.urlsafe_b64encode(hmac.new(sys.argv[1].encode(), msg, hashlib.sha256).digest()).rstrip(b"=")
print((msg + b"." + sig).decode())
PY
)
curl -fs -o /dev/null -H "Authorization: Bearer $token" localhost:18085/ || { echo "the JWT route refused the token"; exit 1; }

to_ms() { awk -v v="$1" 'BEGIN { if (v ~ /us$/) { sub(/us$/, "", v); print v / 1000 } else if (v ~ /ms$/) { sub(/ms$/, "", v); print v } else { sub(/s$/, "", v); print v * 1000 } }'; }
run() { # label url [header]: appends "rps p50 p99" to $work/$label.runs
    local out
    if [ -n "${3:-}" ]; then out=$(wrk -t2 -c"$CONNECTIONS" -d"$DURATION" --latency -H "$3" "$2"); else out=$(wrk -t2 -c"$CONNECTIONS" -d"$DURATION" --latency "$2"); fi
    echo "$(echo "$out" | awk '/Requests\/sec/ {print $2}') $(to_ms "$(echo "$out" | awk '$1 == "50%" {print $2}')") $(to_ms "$(echo "$out" | awk '$1 == "99%" {print $2}')")" >>"$work/$1.runs"
    if echo "$out" | grep -q "Non-2xx"; then echo "warning: $1 had non-2xx answers"; fi
}
for round in $(seq "$ROUNDS"); do
    echo "round $round of $ROUNDS"
    run a http://127.0.0.1:18081/
    run b http://127.0.0.1:18082/
    run c http://127.0.0.1:18083/
    run d http://127.0.0.1:18084/
    run e http://127.0.0.1:18085/ "Authorization: Bearer $token"
done
median() { sort -g | awk '{ v[NR] = $1 } END { print (NR % 2) ? v[(NR + 1) / 2] : (v[NR / 2] + v[NR / 2 + 1]) / 2 }'; }
declare -A RPS P50 P99
for k in a b c d e; do
    RPS[$k]=$(awk '{print $1}' "$work/$k.runs" | median)
    P50[$k]=$(awk '{print $2}' "$work/$k.runs" | median)
    P99[$k]=$(awk '{print $3}' "$work/$k.runs" | median)
done
echo "medians of $ROUNDS rounds; wrk -t2 -c$CONNECTIONS -d$DURATION; Strata proxy.workers=$STRATA_PROXY_WORKERS"
printf '%-44s %12s %9s %9s %10s\n' setup "requests/s" "p50 ms" "p99 ms" "vs nginx"
for k in a b c d e; do
    case $k in a) name="(a) nginx origin, direct";; b) name="(b) nginx reverse proxy";; c) name="(c) HAProxy";;
        d) name="(d) Strata proxy, routing only";; e) name="(e) Strata, JWT + rate limit + access log";; esac
    ratio=$(awk -v x="${RPS[$k]}" -v y="${RPS[b]}" 'BEGIN { printf "%.2fx", x / y }')
    printf '%-44s %12.0f %9s %9s %10s\n' "$name" "${RPS[$k]}" "${P50[$k]}" "${P99[$k]}" "$ratio"
done
echo "access log lines written by (e): $(wc -l <"$work/access.log")"
