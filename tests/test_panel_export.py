"""Export page and files: usage, ledger and audit trail as CSV / JSON Lines for a period."""
from __future__ import annotations

import csv
import io
import json

import pytest

from panel_support import app, demo_store, new_store_url, open_page, texts  # noqa: I001

from app_pages.common.export_files import file_name, render, rows_for


@pytest.fixture(scope="module")
def store():
    return demo_store(new_store_url(), users=6, days=3)


def test_usage_rows_equal_the_rollups_and_render_as_csv_and_jsonl(store):
    rows = rows_for(store, "usage", "0001-01-01", "9999-12-31")
    assert sum(r["tokens"] for r in rows) == sum(r.tokens for r in store.daily_usage("0000", "9999"))
    parsed = list(csv.DictReader(io.StringIO(render(rows, "usage", "csv"))))
    assert len(parsed) == len(rows) and parsed[0]["user_id"] == rows[0]["user_id"]
    lines = render(rows, "usage", "jsonl").splitlines()
    assert [json.loads(line) for line in lines] == rows


def test_ledger_rows_for_one_user_and_audit(store):
    uid = store.users()[0].id
    rows = rows_for(store, "ledger", "0001-01-01", "9999-12-31", uid)
    assert rows and {r["user_id"] for r in rows} == {uid}
    assert "content" not in rows[0] and "messages" not in rows[0]
    store.audit("ann", "grant", {"tokens": 5})
    audit = rows_for(store, "audit", "0001-01-01", "9999-12-31", "ann")
    assert audit[-1]["action"] == "grant"
    assert json.loads(list(csv.DictReader(io.StringIO(render(audit, "audit", "csv"))))[-1]["detail"]) == {"tokens": 5}
    assert file_name("ledger", "jsonl", "2026-11-01", "2026-11-30") == "tokenlimit-ledger-2026-11-01_2026-11-30.jsonl"
    with pytest.raises(ValueError, match="export kind"):
        rows_for(store, "secrets", "0001-01-01", "9999-12-31")


def test_page_offers_the_download(monkeypatch, store):
    at = open_page(app(monkeypatch, store.url), "export")
    count = len(rows_for(store, "usage", *[d.isoformat() for d in at.date_input(key="exp_period").value]))
    assert f"{count:,} rows" in texts(at.caption)
    assert not at.download_button(key="exp_download").disabled
    at.radio(key="exp_kind").set_value("ledger").run()
    at.radio(key="exp_format").set_value("jsonl").run()
    assert at.download_button(key="exp_download").label.startswith("Download tokenlimit-ledger-")
    assert at.download_button(key="exp_download").label.endswith(".jsonl")
