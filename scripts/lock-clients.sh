#!/usr/bin/env bash
# Drives Strata's locks with real clients: redis-py's `Lock` class (SET NX PX and its Lua
# release/extend scripts) against one Strata, redis-py issuing LOCK.* with fencing tokens,
# and pottery's Redlock over three Strata processes (one of them then killed).
#
#   scripts/lock-clients.sh
set -euo pipefail
cd "$(dirname "$0")/.."

venv=${STRATA_VENV:-/tmp/strata-lock-venv}
[ -x "$venv/bin/python" ] || python3 -m venv "$venv"
"$venv/bin/python" -c 'import redis, pottery' 2>/dev/null || "$venv/bin/pip" install -q 'redis>=5,<6' 'pottery>=3.0'

cargo build --release -p strata
work=$(mktemp -d)
trap 'for p in "$work"/pid*; do kill -9 "$(cat "$p")" 2>/dev/null || true; done; rm -rf "$work"' EXIT
for i in 1 2 3; do
    (STRATA_HTTP_LISTEN=127.0.0.1:1809$i STRATA_RESP_LISTEN=127.0.0.1:1637$i STRATA_PG_ENABLED=false \
        STRATA_S3_ENABLED=false STRATA_SQS_ENABLED=false STRATA_KAFKA_ENABLED=false STRATA_ES_ENABLED=false \
        target/release/strata serve --data-dir "$work/data$i" >"$work/log$i" 2>&1 &
        echo $! >"$work/pid$i")
done
for i in 1 2 3; do
    for _ in $(seq 100); do curl -fs localhost:1809$i/health >/dev/null && break; sleep 0.1; done
done

"$venv/bin/python" - "$work" <<'PY'
import sys, time, threading, os, signal
import redis
from redis.exceptions import LockError, LockNotOwnedError, ResponseError
from pottery import Redlock
work = sys.argv[1]
def ok(msg): print("ok:", msg)

r = redis.Redis(port=16371)
lock = r.lock("ticket:42", timeout=2, blocking_timeout=0.2)
assert lock.acquire()
other = r.lock("ticket:42", timeout=2, blocking_timeout=0.2)
assert not other.acquire(), "a held lock is not taken twice"
assert lock.owned() and lock.locked()
lock.extend(3)
assert 2500 <= r.pttl("ticket:42") <= 5000
lock.reacquire()
lock.release()
assert other.acquire(), "free after release"
other.release()
ok("redis-py Lock: acquire, contention, owned/locked, extend, reacquire, release")

short = r.lock("job", timeout=0.2)
assert short.acquire()
time.sleep(0.4)
thief = r.lock("job", timeout=5)
assert thief.acquire(), "an expired lock is free"
try:
    short.release()
    raise SystemExit("a stale holder released someone else's lock")
except LockNotOwnedError:
    pass
thief.release()
ok("redis-py Lock: expiry hands the lock on; the stale holder cannot release it")

with r.lock("ctx", timeout=5, blocking_timeout=1):
    assert r.get("ctx") is not None
assert r.get("ctx") is None
ok("redis-py Lock as a context manager")

t1 = r.execute_command("LOCK.ACQUIRE", "seat:1", "seat:2", "OWNER", "alice", "TTL", 5000)
assert r.execute_command("LOCK.ACQUIRE", "seat:2", "OWNER", "bob", "TTL", 5000) is None
got = {}
def bob():
    got["token"] = redis.Redis(port=16371).execute_command("LOCK.ACQUIRE", "seat:2", "OWNER", "bob", "TTL", 5000, "WAIT", 3000)
th = threading.Thread(target=bob); th.start(); time.sleep(0.1)
info = r.execute_command("LOCK.INFO", "seat:2")
assert r.execute_command("LOCK.RELEASE", "seat:1", "seat:2", "OWNER", "alice") == 2
th.join()
assert got["token"] > t1, (got, t1)
try:
    r.execute_command("LOCK.RELEASE", "seat:2", "OWNER", "alice")
    raise SystemExit("release by a non-holder")
except ResponseError as e:
    assert "NOTOWNER" in str(e) or str(e).startswith("resource"), e
ok(f"redis-py LOCK.*: fencing tokens {t1} < {got['token']}, blocking WAIT, NOTOWNER; info {info}")

masters = {redis.Redis(port=p) for p in (16371, 16372, 16373)}
a = Redlock(key="auction:7", masters=masters, auto_release_time=5)
b = Redlock(key="auction:7", masters=masters, auto_release_time=5)
assert a.acquire(blocking=False)
assert not b.acquire(blocking=False)
assert a.locked() > 0
a.release()
assert b.acquire(blocking=False)
b.release()
os.kill(int(open(f"{work}/pid3").read()), signal.SIGKILL)
c = Redlock(key="auction:8", masters=masters, auto_release_time=5, context_manager_timeout=1)
assert c.acquire(blocking=False), "two of three instances are a majority"
c.release()
ok("pottery Redlock over three Strata processes, still locking with one killed")
PY
