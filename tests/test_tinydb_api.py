"""Store operations of the tinydb store: no-ops write nothing, every change reaches other store objects."""
from __future__ import annotations

import time

from tokenlimit_core.store import (BudgetCharge, ChargeRequest, Counter, CounterKey, LedgerEvent, Settlement,
                                   UserInfo)
from tokenlimit_core.store.tinydb_ops import HOT_AUDIT
from tokenlimit_core.store.tinydb_store import TinyDBStore

FAR = time.time() + 86400
KEY = CounterKey("user:u1:total", "2026-12-04")


def charge(store, rid, amount=10, limit=100):
    event = LedgerEvent(request_id=rid, ts=time.time(), day="2026-12-04", user_id="u1", model="m", est_prompt=amount)
    return store.charge(ChargeRequest(rid, amount, (BudgetCharge(KEY, limit, FAR),), event))


def test_operations_that_change_nothing_write_nothing(tmp_path):
    store = TinyDBStore(str(tmp_path / "s"))
    charge(store, "r1")
    store.touch_user(UserInfo("u1", "Ann", last_seen=1.0))
    size = store.info()["journal_bytes"]
    assert charge(store, "r1").duplicate
    assert store.settle("nope", Settlement(1, 1, "openai"), time.time()) is None
    assert store.refund("nope", "admin") is None
    store.touch_user(UserInfo("u1", "Ann", last_seen=1.0))
    assert store.info()["journal_bytes"] == size
    store.close()


def test_every_change_reaches_another_store_object(tmp_path):
    a, b = TinyDBStore(str(tmp_path / "s")), TinyDBStore(str(tmp_path / "s"))
    charge(a, "r1", 30)
    b.settle("r1", Settlement(5, 5, "openai"), time.time())
    a.grant(KEY, 50, FAR, "admin")
    b.touch_user(UserInfo("u2", "李雷", groups=("g",)))
    a.put_counters([(Counter(CounterKey("shared:x", "w"), 7, 0, 1), FAR)])
    b.save_policy('{"roles": {"user": 5}}', "panel")
    [counter] = b.counters([KEY])
    assert (counter.used, counter.pending, counter.granted) == (10, 0, 50)
    assert {u.name for u in a.users()} == {"李雷"}
    assert b.counters([CounterKey("shared:x", "w")])[0].used == 7
    assert a.load_policy().actor == "panel" and a.policy_revision() == 1
    assert [e.action for e in a.audit_log()][:2] == ["policy", "grant"]
    b.reset(KEY, "admin")
    assert a.counters([KEY])[0].used == 0
    a.close()
    b.close()


def test_audit_log_reaches_back_past_the_hot_state(tmp_path):
    store = TinyDBStore(str(tmp_path / "s"), journal_mb=0.05)
    for n in range(HOT_AUDIT + 300):
        store.audit("admin", "note", {"n": n})
    store.compact()
    log = store.audit_log(HOT_AUDIT + 300)
    assert [e.detail["n"] for e in log] == list(range(HOT_AUDIT + 299, -1, -1))
    assert [e.detail["n"] for e in store.audit_log(3)] == [HOT_AUDIT + 299, HOT_AUDIT + 298, HOT_AUDIT + 297]
    store.close()


def test_bulk_events_skip_pending_requests(tmp_path):
    store = TinyDBStore(str(tmp_path / "s"))
    charge(store, "live")
    store.put_history(events=[LedgerEvent(request_id="live", ts=1.0, day="x", user_id="u1", status="settled")])
    assert store.get_event("live").status == "pending"
    store.close()
