"""export: usage and ledger rows, CSV and JSON Lines, day ranges and users, no message text."""
from __future__ import annotations

import csv
import io
import json
from datetime import datetime, timezone

import pytest

from tokenlimit_core import Engine, Policy, UserInfo, open_store
from tokenlimit_core.export import LEDGER_COLUMNS, USAGE_COLUMNS, ledger_rows, usage_rows, write
from tokenlimit_core.store import DailyUsage

SECRET = "the secret plan is hidden in the quarterly report"


def traffic(store):
    engine = Engine(store, seed=Policy(roles={"user": 100_000}, timezone="Asia/Shanghai"))
    alice = UserInfo("alice", "Alice Smith", "alice@example.edu")
    bob = UserInfo("bob", "=HYPERLINK(\"http://x\")", "bob@example.edu")
    body = {"messages": [{"role": "user", "content": SECRET}]}
    for i, (user, hour) in enumerate([(alice, 1), (alice, 20), (bob, 12)]):
        now = datetime(2026, 12, 3, hour, tzinfo=timezone.utc)
        engine.check(user, "gpt-4o", body, request_id=f"r{i}", now=now)
        engine.settle(f"r{i}", {"usage": {"prompt_tokens": 100 + i, "completion_tokens": 10}}, now=now)
    store.put_history(daily=[DailyUsage("2026-11-01", "carol", "llama3:8b", 50, 40, 10, 1)])


def test_usage_rows_have_directory_names_and_respect_range_and_user(store):
    traffic(store)
    rows = usage_rows(store)
    assert [list(r) for r in rows] == [USAGE_COLUMNS] * len(rows)
    assert {(r["day"], r["user_id"]) for r in rows} == {("2026-11-01", "carol"), ("2026-12-03", "alice"),
                                                         ("2026-12-04", "alice"), ("2026-12-03", "bob")}
    alice = [r for r in rows if r["user_id"] == "alice"]
    assert alice[0]["name"] == "Alice Smith" and alice[0]["email"] == "alice@example.edu"
    assert [r["user_id"] for r in usage_rows(store, "2026-12-01", "2026-12-31", "bob")] == ["bob"]
    assert usage_rows(store, "2026-11-02", "2026-11-30") == []


def test_ledger_rows_use_the_accounting_day_not_utc(store):
    traffic(store)
    rows = ledger_rows(store, "2026-12-04", "2026-12-04")  # 20:00 UTC is the 4th in Shanghai
    assert [r["request_id"] for r in rows] == ["r1"]
    all_rows = ledger_rows(store)
    assert [r["request_id"] for r in all_rows] == ["r0", "r2", "r1"]
    assert list(all_rows[0]) == LEDGER_COLUMNS
    assert all_rows[0]["tokens"] == 110 and all_rows[0]["status"] == "settled"
    assert ledger_rows(store, user_id="bob")[0]["request_id"] == "r2"


def test_csv_and_jsonl_round_trip_without_message_text(store):
    traffic(store)
    for fmt in ("csv", "jsonl"):
        out = io.StringIO()
        assert write(ledger_rows(store), fmt, out, LEDGER_COLUMNS) == 3
        assert SECRET not in out.getvalue()
    out = io.StringIO()
    write(usage_rows(store), "jsonl", out)
    parsed = [json.loads(line) for line in out.getvalue().splitlines()]
    assert parsed == usage_rows(store)
    out = io.StringIO()
    write(usage_rows(store), "csv", out, USAGE_COLUMNS)
    table = list(csv.DictReader(io.StringIO(out.getvalue())))
    assert [int(r["tokens"]) for r in table] == [r["tokens"] for r in usage_rows(store)]


def test_csv_neutralises_spreadsheet_formulas():
    out = io.StringIO()
    write([{"name": "=HYPERLINK(\"http://x\")", "tokens": -1}], "csv", out)
    row = next(csv.DictReader(io.StringIO(out.getvalue())))
    assert row == {"name": "'=HYPERLINK(\"http://x\")", "tokens": "-1"}  # numbers stay numbers


def test_empty_export_still_has_a_header_and_bad_format_is_named():
    out = io.StringIO()
    assert write([], "csv", out, USAGE_COLUMNS) == 0
    assert out.getvalue().strip() == ",".join(USAGE_COLUMNS)
    with pytest.raises(ValueError, match="xlsx"):
        write([], "xlsx", io.StringIO())


def test_ledger_rows_on_extreme_day_bounds():
    store = open_store("memory://")
    traffic(store)
    assert len(ledger_rows(store, "0001-01-01", "9999-12-31")) == 3
    assert len(ledger_rows(store, "0001-01-02", "9999-12-30")) == 3
