"""The tinydb store across processes: no overshoot, exactly-once settles, kill -9, policy edits seen."""
from __future__ import annotations

import json
import os
import random
import signal
import subprocess
import sys
import time

import pytest

from tokenlimit_core import Engine, Policy, UserInfo, open_store
from tokenlimit_core.store import CounterKey, StoreError
from tokenlimit_core.store.tinydb_store import TinyDBStore

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
KEY = CounterKey("shared:all", "2026-12-04")

# A worker process: `threads` threads each charge one request against one budget and settle it.
# It prints one JSON line per request: what it saw before charging, and what it settled.
CONTENDER = r"""
import json, sys, threading, time
from tokenlimit_core.store import open_store, BudgetCharge, ChargeRequest, CounterKey, LedgerEvent, Settlement
url, name, threads, limit = sys.argv[1], sys.argv[2], int(sys.argv[3]), int(sys.argv[4])
store = open_store(url)
key = CounterKey("shared:all", "2026-12-04")
out, lock, start = [], threading.Lock(), threading.Event()
def one(i):
    rid = f"{name}-{i}"
    amount = 5 + (i * 7) % 11
    start.wait()
    ev = LedgerEvent(request_id=rid, ts=time.time(), day="2026-12-04", user_id=f"user{i % 5}", model="m",
                     est_prompt=amount)
    res = store.charge(ChargeRequest(rid, amount, (BudgetCharge(key, limit, time.time() + 86400),), ev))
    c = res.counters[0]
    row = {"rid": rid, "amount": amount, "charged": res.charged, "used": c.used, "pending": c.pending, "settled": 0}
    if res.charged:
        settled = store.settle(rid, Settlement(amount - 3, 1, "openai"), time.time())
        row["settled"] = settled.actual_prompt + settled.actual_completion
    with lock:
        out.append(row)
ts = [threading.Thread(target=one, args=(i,)) for i in range(threads)]
for t in ts: t.start()
start.set()
for t in ts: t.join()
store.close()
print(json.dumps(out))
"""

# A writer that charges and settles forever; after each settle returns it appends
# "request_id tokens" to the acknowledgement file (unbuffered, so kill -9 loses nothing written).
WRITER = r"""
import os, sys, time
from tokenlimit_core.store import open_store, BudgetCharge, ChargeRequest, CounterKey, LedgerEvent, Settlement
url, ack, run = sys.argv[1], sys.argv[2], sys.argv[3]
store = open_store(url)
fd = os.open(ack, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o600)
key = CounterKey("user:w:total", "2026-12-04")
i = 0
while True:
    rid = f"{run}-{i}"
    ev = LedgerEvent(request_id=rid, ts=time.time(), day="2026-12-04", user_id="w", model="m", est_prompt=40)
    store.charge(ChargeRequest(rid, 50, (BudgetCharge(key, -1, time.time() + 86400),), ev))
    if i % 5 == 0:
        store.touch_user(__import__("tokenlimit_core").UserInfo(f"u{i % 50}", f"User {i}"))
    got = store.settle(rid, Settlement(10 + i % 7, 3, "openai"), time.time())
    os.write(fd, f"{rid} {got.actual_prompt + got.actual_completion}\n".encode())
    i += 1
"""


def run_python(code: str, *args: str, **kwargs) -> subprocess.Popen:
    env = dict(os.environ, PYTHONPATH=ROOT)
    return subprocess.Popen([sys.executable, "-c", code, *args], env=env, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True, **kwargs)


def test_four_processes_never_overshoot_and_settle_once(tmp_path):
    url = f"tinydb://{tmp_path}/store?journal_mb=0.05&sync=never"  # small journal: compactions happen mid-race
    limit = 1200
    TinyDBStore.from_url(url).close()
    procs = [run_python(CONTENDER, url, f"p{n}", "50", str(limit)) for n in range(4)]
    rows = []
    for proc in procs:
        out, err = proc.communicate(timeout=120)
        assert proc.returncode == 0, err
        rows += json.loads(out)
    assert len(rows) == 200
    charged = [r for r in rows if r["charged"]]
    assert charged and len(charged) < 200  # the budget was contested: some fit, some did not
    for r in charged:  # at the moment of charging, the charge fit: nothing raced past the limit
        assert r["used"] + r["pending"] + r["amount"] <= limit, r
    store = open_store(url)
    try:
        [counter] = store.counters([KEY])
        assert counter.pending == 0
        assert counter.used == sum(r["settled"] for r in charged)  # each settle counted exactly once
        events = store.ledger(0, time.time() + 60)
        assert len(events) == 200
        assert sorted(e.request_id for e in events if e.status == "settled") == sorted(r["rid"] for r in charged)
        assert sum(r.tokens for r in store.daily_usage("2026-12-04", "2026-12-04")) == counter.used
        assert sum(r.requests for r in store.daily_usage("2026-12-04", "2026-12-04")) == 200
    finally:
        store.close()


@pytest.mark.slow
def test_kill_minus_nine_loses_no_acknowledged_settle(tmp_path):
    url = f"tinydb://{tmp_path}/store?journal_mb=0.02"  # compaction and merging every few dozen requests
    ack = tmp_path / "ack.txt"
    TinyDBStore.from_url(url).close()
    rng = random.Random(3)
    kills = 0
    for run in range(22):
        proc = run_python(WRITER, url, str(ack), f"run{run}")
        time.sleep(0.25 + rng.random() * 0.5)
        assert proc.poll() is None, proc.communicate()[1]
        proc.send_signal(signal.SIGKILL)
        proc.wait(10)
        kills += 1
    acknowledged = dict(line.split() for line in ack.read_text().splitlines())
    assert kills >= 20 and len(acknowledged) > 100
    store = open_store(url)  # opens: nothing is corrupt
    try:
        for rid, tokens in acknowledged.items():
            event = store.get_event(rid)
            assert event is not None and event.status == "settled", rid
            assert event.tokens == int(tokens)
        events = store.ledger(0, time.time() + 60)
        settled = [e for e in events if e.status == "settled"]
        assert {e.request_id for e in settled} >= set(acknowledged)
        [counter] = store.counters([CounterKey("user:w:total", "2026-12-04")])
        pending = [e for e in events if e.status == "pending"]
        assert counter.used == sum(e.tokens for e in settled)  # no settle lost or applied twice
        assert counter.pending == 50 * len(pending)
        rollup = store.daily_usage("2026-12-04", "2026-12-04")
        assert sum(r.tokens for r in rollup) == sum(e.tokens for e in events)
        assert sum(r.requests for r in rollup) == len(events)
        store.compact()  # merging what the killed writers left still adds up the same
        assert sum(r.tokens for r in store.daily_usage("2026-12-04", "2026-12-04")) == sum(e.tokens for e in events)
    finally:
        store.close()


def test_policy_edit_by_another_process_seen_within_a_second(tmp_path):
    url = f"tinydb://{tmp_path}/store"
    engine = Engine(open_store(url), seed=Policy(roles={"user": 1000}))
    user = UserInfo("alice", role="user")
    body = {"messages": [{"role": "user", "content": "hi"}]}
    assert engine.check(user, "m", body).allowed
    edit = run_python("import sys; from tokenlimit_core import open_store, Policy; "
                      "open_store(sys.argv[1]).save_policy(Policy(roles={'user': 0}).to_json(), 'panel')", url)
    assert edit.wait(30) == 0, edit.communicate()[1]
    saved = time.monotonic()
    while engine.check(user, "m", body).allowed:
        assert time.monotonic() - saved < 1.0, "policy edit not seen within 1 s"
        time.sleep(0.02)
    engine.store.close()


def test_history_survives_compaction_and_merging(tmp_path):
    from tokenlimit_core.store import BudgetCharge, ChargeRequest, LedgerEvent, Settlement

    store = TinyDBStore.from_url(f"tinydb://{tmp_path}/s?journal_mb=0.01")
    other = TinyDBStore.from_url(f"tinydb://{tmp_path}/s")
    for i in range(120):
        s = store if i % 2 else other
        day = f"2026-11-{1 + i % 28:02d}"
        ev = LedgerEvent(request_id=f"r{i}", ts=1_790_000_000 + i * 86400 / 5, day=day, user_id=f"u{i % 3}", model="m")
        s.charge(ChargeRequest(f"r{i}", 10, (BudgetCharge(KEY, -1, time.time() + 86400),), ev))
        if i % 4:
            s.settle(f"r{i}", Settlement(3, 4, "openai"), time.time())
    assert store.info()["generation"] > 3  # compacted several times
    store.wait_merged()
    daily = other.daily_usage("2026-11-01", "2026-11-30")
    assert sum(r.tokens for r in daily) == 30 * 10 + 90 * 7 and sum(r.requests for r in daily) == 120
    monthly = other.monthly_usage("2026-11", "2026-11")
    assert {(r.day, r.user_id): r.tokens for r in monthly} == {
        ("2026-11", u): sum(r.tokens for r in daily if r.user_id == u) for u in ("u0", "u1", "u2")}
    assert len(other.ledger(0, 2e9)) == 120 and len(other.ledger(0, 2e9, user_id="u1")) == 40
    assert other.get_event("r0").status == "pending" and other.get_event("r1").status == "settled"
    assert other.refund("r1", "admin").status == "refunded"  # an event already in history
    assert store.get_event("r1").status == "refunded"
    assert sum(r.tokens for r in store.daily_usage("2026-11-01", "2026-11-30")) == 30 * 10 + 89 * 7
    store.close()
    other.close()


def test_info_reports_layout_and_sizes(tmp_path):
    store = TinyDBStore.from_url(f"tinydb://{tmp_path}/s?retention_days=30")
    info = store.info()
    assert info["backend"] == "tinydb" and info["path"] == f"{tmp_path}/s" and info["healthy"] is True
    assert info["retention_days"] == 30 and info["journal_bytes"] == 0 and info["state_bytes"] > 0
    store.close()


@pytest.mark.parametrize("option", ["retention_days=abc", "journal_mb=0", "colour=blue"])
def test_bad_url_options_are_named(tmp_path, option):
    with pytest.raises(StoreError, match=option.split("=")[0]):
        TinyDBStore.from_url(f"tinydb://{tmp_path}/s?{option}")


def test_damage_while_running_reaches_the_filter_as_unavailable(tmp_path):
    store = TinyDBStore(str(tmp_path / "s"))
    engine = Engine(store, seed=Policy(roles={"user": 1000}), failure_mode="block")
    user, body = UserInfo("bob", role="user"), {"messages": [{"role": "user", "content": "hi"}]}
    assert engine.check(user, "m", body).allowed
    with open(store._journal.path, "ab") as handle:
        handle.write(b"\x00garbage from a broken disk\n")
    decision = engine.check(user, "m", body)
    assert not decision.allowed and decision.status == "unavailable"
    assert store.info()["healthy"] is False and "corrupt" in store.info()["error"]
    store.close()


@pytest.mark.parametrize("sync,fsync_each", [("always", True), ("second", False), ("never", False)])
def test_sync_modes(tmp_path, sync, fsync_each):
    store = TinyDBStore.from_url(f"tinydb://{tmp_path}/s?sync={sync}")
    assert store.info()["sync"] == sync and store._journal.fsync is fsync_each
    assert (store._flusher is not None) == (sync == "second")
    store.close()
    with pytest.raises(StoreError, match="sync='sometimes'"):
        TinyDBStore(str(tmp_path / "t"), sync="sometimes")


def test_url_paths_are_unquoted_and_options_read(tmp_path):
    store = open_store(f"tinydb://{tmp_path}/with%20space?retention_days=7&journal_mb=1&lock_timeout=2")
    assert store.path == f"{tmp_path}/with space" and store.retention_days == 7
    assert store.journal_bytes == 1024 * 1024 and store.lock_timeout == 2
    store.close()
    with pytest.raises(StoreError, match="names no directory"):
        TinyDBStore.from_url("tinydb://")


def test_several_processes_creating_the_store_at_once(tmp_path):
    url = f"tinydb://{tmp_path}/fresh"
    code = ("import sys; from tokenlimit_core import open_store; s = open_store(sys.argv[1]); "
            "s.audit('worker', 'started', {}); s.close()")
    procs = [run_python(code, url) for _ in range(4)]
    for proc in procs:
        _out, err = proc.communicate(timeout=60)
        assert proc.returncode == 0, err
    store = open_store(url)
    assert [a.action for a in store.audit_log()] == ["started"] * 4
    store.close()
