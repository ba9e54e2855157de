"""History files: merging is idempotent across crashes, rollups stay exact, retention drops only raw events."""
from __future__ import annotations

import json
import os
import shutil
import time

import pytest

from tokenlimit_core.store import BudgetCharge, ChargeRequest, CounterKey, DailyUsage, LedgerEvent, Settlement, StoreError
from tokenlimit_core.store.tinydb_files import AtomicJSONStorage, FileMode
from tokenlimit_core.store.tinydb_history import History, day_file_name, month_of_day
from tokenlimit_core.store.tinydb_journal import Journal
from tokenlimit_core.store.tinydb_ops import charge_record, settle_record
from tokenlimit_core.store.memory import StoreState
from tokenlimit_core.store.tinydb_store import TinyDBStore

FAR = time.time() + 86400


def charge(store, rid, day="2026-11-03", user="u1", model="m", amount=10, ts=None):
    key = CounterKey(f"user:{user}:total", day)
    event = LedgerEvent(request_id=rid, ts=ts or time.time(), day=day, user_id=user, model=model, est_prompt=amount)
    return store.charge(ChargeRequest(rid, amount, (BudgetCharge(key, -1, FAR),), event))


def write_journal(folder, generation, n):
    """A closed journal of n charged-and-settled requests on 2026-11-03 (7 tokens each once settled)."""
    state, journal = StoreState(), Journal(str(folder), generation, FileMode(), fsync=False)
    for i in range(n):
        key = CounterKey("user:u1:total", "2026-11-03")
        event = LedgerEvent(request_id=f"g{generation}-{i}", ts=1_793_000_000 + i, day="2026-11-03", user_id="u1",
                            model="m", est_prompt=10)
        req = ChargeRequest(event.request_id, 10, (BudgetCharge(key, -1, FAR),), event)
        state.charge(req)
        journal.append(charge_record(req, state.events[event.request_id]))
        before = state.events[event.request_id]
        after = state.settle(event.request_id, Settlement(3, 4, "openai"), 5.0)
        journal.append(settle_record(event.request_id, Settlement(3, 4, "openai"), 5.0, before, after,
                                     state.keys[event.request_id]))
    journal.close()
    return journal.path


def totals(history, kind="daily"):
    first, last = ("2026-11-01", "2026-11-30") if kind == "daily" else ("2026-11", "2026-11")
    return [(r["tokens"], r["requests"]) for r, _m in history.rollup_rows(kind, first, last)]


def test_merging_twice_after_a_crash_counts_once(tmp_path):
    history = History(str(tmp_path), FileMode())
    path = write_journal(tmp_path, 3, 5)
    saved = open(path, "rb").read()
    history.merge_journal(path, 3)
    assert not os.path.exists(path)
    assert totals(history) == [(35, 5)] and totals(history, "monthly") == [(35, 5)]
    open(path, "wb").write(saved)  # as if the crash came before the journal was deleted
    history.merge_journal(path, 3)
    assert totals(history) == [(35, 5)] and totals(history, "monthly") == [(35, 5)]
    assert len(history.read_segment(history.segments()[0])) == 5


def test_a_crash_between_day_and_month_file_is_finished_by_the_next_merge(tmp_path):
    history = History(str(tmp_path), FileMode())
    path = write_journal(tmp_path, 4, 2)
    day_path = os.path.join(history.root, "daily", "2026-11", day_file_name("2026-11-03"))
    history.merge_journal(path, 4)
    os.remove(os.path.join(history.root, "monthly", "2026-11.json"))  # the month file was never written
    write_journal(tmp_path, 4, 2)
    history.merge_journal(path, 4)
    assert totals(history) == [(14, 2)] and totals(history, "monthly") == [(14, 2)]
    assert json.load(open(day_path))["meta"]["1"]["merged_through"] == 4


def test_rollup_files_are_tinydb_documents(tmp_path):
    from tinydb import TinyDB, Query

    history = History(str(tmp_path), FileMode())
    history.merge_journal(write_journal(tmp_path, 0, 3), 0)
    path = os.path.join(history.root, "monthly", "2026-11.json")
    for db in (TinyDB(path), TinyDB(path, storage=AtomicJSONStorage)):
        assert db.table("rows").search(Query().user_id == "u1")[0]["tokens"] == 21
        assert db.table("meta").all() == [{"merged_through": 0}]
        db.close()


def test_non_date_days_are_kept_apart():
    assert month_of_day("2026-11-03") == "2026-11" and month_of_day("w") == "other"
    assert day_file_name("w").startswith("x-") and "/" not in day_file_name("2026/11")


def test_bulk_daily_rows_set_not_add_and_months_follow(tmp_path):
    store = TinyDBStore(str(tmp_path / "s"))
    rows = [DailyUsage(f"2026-10-{d:02d}", "u1", "m", tokens=100, requests=2) for d in range(1, 11)]
    store.put_history(rows)
    store.put_history(rows)
    store.put_history([DailyUsage("2026-10-01", "u1", "m", tokens=40, requests=1)])
    [month] = store.monthly_usage("2026-10", "2026-10")
    assert (month.day, month.tokens, month.requests) == ("2026-10", 940, 19)
    assert sum(r.tokens for r in store.daily_usage("2026-10-01", "2026-10-31")) == 940
    store.close()


def test_year_overview_reads_monthly_files_only(tmp_path):
    store = TinyDBStore(str(tmp_path / "s"))
    store.put_history([DailyUsage(f"2025-{m:02d}-{d:02d}", f"u{u}", "m", tokens=1)
                       for m in range(1, 13) for d in range(1, 29) for u in range(3)])
    shutil.rmtree(tmp_path / "s" / "history" / "daily")  # monthly_usage must not need them
    months = store.monthly_usage("2025-01", "2025-12")
    assert len(months) == 36 and {r.tokens for r in months} == {28}
    assert [r.tokens for r in store.monthly_usage("2025-01", "2025-12", user_id="u1")] == [28] * 12
    store.close()


def test_live_traffic_merges_into_rollups_and_ledger(tmp_path):
    store = TinyDBStore(str(tmp_path / "s"), journal_mb=0.002)
    for i in range(40):
        charge(store, f"r{i}", user=f"u{i % 2}")
        store.settle(f"r{i}", Settlement(2, 3, "openai"), time.time())
    store.compact()
    assert not [n for n in os.listdir(tmp_path / "s") if n.startswith("journal-") and n != "journal-%08d.jsonl"
                % store.info()["generation"]]
    assert [(r.user_id, r.tokens, r.requests) for r in store.daily_usage("2026-11-03", "2026-11-03")] == [
        ("u0", 100, 20), ("u1", 100, 20)]
    assert [(r.user_id, r.tokens) for r in store.monthly_usage("2026-11", "2026-11")] == [("u0", 100), ("u1", 100)]
    assert len(store.ledger(0, time.time() + 1, user_id="u0")) == 20
    store.close()


def test_retention_drops_old_raw_events_but_keeps_rollups(tmp_path):
    store = TinyDBStore(str(tmp_path / "s"), retention_days=30)
    old = time.time() - 90 * 86400
    store.put_history([DailyUsage("2020-01-01", "u1", "m", tokens=5)],
                      [LedgerEvent(request_id="ancient", ts=old, day="2020-01-01", user_id="u1", model="m",
                                   charged=5, status="settled", actual_prompt=5, actual_completion=0)])
    charge(store, "recent")
    assert [e.request_id for e in store.ledger(0, time.time() + 1)] == ["recent"]
    assert store.get_event("ancient") is None
    store.compact()  # merging applies retention to the files
    assert not os.path.exists(tmp_path / "s" / "history" / "ledger" / time.strftime("%Y-%m", time.gmtime(old)))
    assert [r.tokens for r in store.daily_usage("2020-01-01", "2020-01-01")] == [5]
    store.close()


def test_damaged_rollup_file_is_named_and_kept(tmp_path):
    store = TinyDBStore(str(tmp_path / "s"))
    store.put_history([DailyUsage("2026-10-01", "u1", "m", tokens=100)])
    path = tmp_path / "s" / "history" / "daily" / "2026-10" / "2026-10-01.json"
    path.write_text(path.read_text()[:-10])
    with pytest.raises(StoreError, match=rf"{path} is corrupt"):
        store.daily_usage("2026-10-01", "2026-10-31")
    assert store.monthly_usage("2026-10", "2026-10")[0].tokens == 100  # other files still serve
    store.close()


def test_unknown_ids_do_not_scan_the_ledger(tmp_path, monkeypatch):
    store = TinyDBStore(str(tmp_path / "s"))
    store.put_history(events=[LedgerEvent(request_id=f"e{i}", ts=1_700_000_000 + i * 86400, day="2023-11-14",
                                          user_id="u", model="m", status="settled") for i in range(60)])
    assert store.get_event("e42").ts == 1_700_000_000 + 42 * 86400
    monkeypatch.setattr(History, "read_segment", lambda *a: pytest.fail("scanned a ledger segment"))
    assert store.get_event("never-seen") is None
    store.close()
