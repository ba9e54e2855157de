"""Estimation page and calibration table: accuracy per model from the ledger, applying new factors."""
from __future__ import annotations

import pandas as pd

from panel_support import all_text, app, demo_store, new_store_url, open_page, plotly_charts  # noqa: I001

from app_pages.common.calibration_table import calibration_frame, frame_to_calibration
from tokenlimit_core import Calibration, Policy


def test_table_round_trip_and_named_errors():
    policy = Policy(calibration={"gpt-4o": Calibration(tokens=0.97, han=-0.1), "qwen3:*": Calibration()})
    frame = calibration_frame(policy)
    assert frame_to_calibration(frame) == (policy.calibration, [])
    frame = frame.astype(object)
    frame.loc[1, "tokens"] = "x"
    frame.loc[2] = ["gpt-4o"] + [None] * (len(frame.columns) - 1)
    _, errors = frame_to_calibration(frame)
    assert [(e.row, e.column, e.code) for e in errors] == [(2, "tokens", "invalid"), (3, "model", "duplicate")]


def test_accuracy_per_model_and_apply_factors(monkeypatch):
    url = new_store_url()
    store = demo_store(url, users=8, days=2)
    rev = store.policy_revision()
    at = open_page(app(monkeypatch, url, signed_in="ann"), "estimation")
    summary = at.dataframe[0].value
    assert len(summary) >= 2 and (summary["requests"] > 0).all()
    settled = [e for e in store.ledger(0, 4e9) if e.status == "settled" and e.actual_source not in (None, "estimate")]
    assert summary["requests"].sum() <= len(settled)
    assert len(plotly_charts(at)) == 2
    at.session_state[f"est_cal_{rev}"] = {"edited_rows": {}, "deleted_rows": [],
                                          "added_rows": [{"model": "gpt-4o", "tokens": 0.97, "overhead": 3.0}]}
    at.run()
    assert "calibration.gpt-4o.tokens" in at.dataframe[-1].value.iloc[:, 0].tolist()
    at.button(key="est_apply").click().run()
    assert not at.exception
    policy = Policy.from_json(store.load_policy().policy_json)
    assert policy.calibration["gpt-4o"].tokens == 0.97
    assert any(e.action == "calibration_applied" and e.actor == "ann" for e in store.audit_log(5))


def test_no_ledger_says_so(monkeypatch):
    at = open_page(app(monkeypatch, new_store_url()), "estimation")
    assert "No settled requests with reported usage" in all_text(at)
    assert isinstance(at.data_editor[0].value, pd.DataFrame)


def test_fit_from_the_ledger_then_apply(monkeypatch):
    url = new_store_url()
    store = demo_store(url, users=20, days=3)
    at = open_page(app(monkeypatch, url, signed_in="ann"), "estimation")
    at.button(key="est_fit").click().run()
    assert not at.exception
    proposals = at.session_state["est_proposals"]
    assert proposals, "the demo's settled traffic is enough to fit at least one model"
    assert Policy.from_json(store.load_policy().policy_json).calibration == {}  # nothing applied yet
    at.button(key="est_apply_fitted").click().run()
    policy = Policy.from_json(store.load_policy().policy_json)
    assert set(policy.calibration) == set(proposals)
    applied = [e for e in store.audit_log(20) if e.action == "calibration" and e.actor == "ann"]
    assert {e.detail["model"] for e in applied} == set(proposals)
