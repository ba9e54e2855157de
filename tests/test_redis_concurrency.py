"""No overshoot on Redis: 4 processes (standing in for nodes) x 100 concurrent requests against one budget."""
from __future__ import annotations

import multiprocessing
import threading
import time
import uuid

from tokenlimit_core.store import (BudgetCharge, ChargeRequest, CounterKey, LedgerEvent, Settlement, open_store)

NODES, THREADS, AMOUNT, LIMIT = 4, 100, 7, 1000
FAR = time.time() + 86400
SHARED = CounterKey("shared:school", "2026-12-05")
TOTALS = [CounterKey(f"user:n{n}:total", "2026-12-05") for n in range(NODES)]


def actual(rid: str) -> int:
    """What a request really used: at most its estimate, varying per request."""
    return AMOUNT - sum(map(ord, rid)) % 3


def _charge_node(url: str, n: int, go, out) -> None:
    store = open_store(url)
    barrier = threading.Barrier(THREADS)
    results = []

    def one(i: int) -> None:
        rid = f"n{n}-{i}"
        event = LedgerEvent(request_id=rid, ts=time.time(), day="2026-12-05", user_id=f"n{n}", model="m",
                            est_prompt=AMOUNT)
        budgets = (BudgetCharge(SHARED, LIMIT, FAR), BudgetCharge(TOTALS[n], 10 * LIMIT, FAR))
        barrier.wait()
        results.append((rid, store.charge(ChargeRequest(rid, AMOUNT, budgets, event)).charged))

    go.wait()
    threads = [threading.Thread(target=one, args=(i,)) for i in range(THREADS)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    out.put(results)
    store.close()


def _settle_node(url: str, rids: list[str], go, out) -> None:
    store = open_store(url)
    settled = []
    lock = threading.Lock()

    def some(part: list[str]) -> None:
        for rid in part:
            if store.settle(rid, Settlement(actual(rid), 0, "openai"), time.time()) is not None:
                with lock:
                    settled.append(rid)

    go.wait()
    threads = [threading.Thread(target=some, args=(rids[k::THREADS],)) for k in range(THREADS)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    out.put(settled)
    store.close()


def _run_nodes(target, args_of) -> list:
    ctx = multiprocessing.get_context("spawn")
    go, out = ctx.Event(), ctx.Queue()
    procs = [ctx.Process(target=target, args=(*args_of(n), go, out)) for n in range(NODES)]
    for p in procs:
        p.start()
    go.set()
    results = [out.get(timeout=120) for _ in procs]
    for p in procs:
        p.join(30)
        assert p.exitcode == 0
    return results


def test_four_nodes_never_charge_past_the_limit_and_settle_each_request_once(redis_server):
    url = f"{redis_server['url']}/0?prefix=conc{uuid.uuid4().hex[:8]}:"
    charged = [rid for node in _run_nodes(_charge_node, lambda n: (url, n)) for rid, ok in node if ok]
    store = open_store(url)
    shared, *totals = store.counters([SHARED, *TOTALS])
    assert shared.pending == AMOUNT * len(charged) <= LIMIT
    assert len(charged) == LIMIT // AMOUNT  # everything that fits was charged, nothing more
    assert sum(t.pending for t in totals) == shared.pending  # all budgets of a request, or none
    assert len(store.ledger(0, 2e9)) == NODES * THREADS

    # every node tries to settle every charged request: each is settled exactly once
    settled = [rid for node in _run_nodes(_settle_node, lambda n: (url, charged)) for rid in node]
    assert sorted(settled) == sorted(charged)
    shared, *totals = store.counters([SHARED, *TOTALS])
    assert (shared.used, shared.pending) == (sum(actual(r) for r in charged), 0)
    assert sum(t.used for t in totals) == shared.used
    rows = store.daily_usage("2026-12-05", "2026-12-05")
    assert sum(r.tokens for r in rows) == shared.used and sum(r.requests for r in rows) == NODES * THREADS
    assert sum(r.denied for r in rows) == NODES * THREADS - len(charged)
    store.close()
