"""Panel charts: the figures carry the numbers they claim (stacking by model, utilization shares, sizes)."""
from __future__ import annotations

import pandas as pd

import panel_support  # noqa: F401  (puts the checkout on sys.path for app_pages)
from app_pages.common import charts

DAILY = pd.DataFrame([("2026-12-01", "u1", "gpt-4o", 500), ("2026-12-01", "u1", "llama3", 300),
                      ("2026-12-02", "u2", "gpt-4o", 2000), ("2026-12-02", "u1", "gpt-4o", 100)],
                     columns=["day", "user_id", "model", "tokens"])


def test_usage_over_time_stacks_models_per_day():
    fig = charts.usage_over_time(DAILY)
    by_model = {trace.name: dict(zip(pd.to_datetime(trace.x).strftime("%m-%d"), trace.y)) for trace in fig.data}
    assert by_model == {"gpt-4o": {"12-01": 500, "12-02": 2100}, "llama3": {"12-01": 300}}
    assert fig.data[0].name == "gpt-4o"  # the largest model first


def test_heatmap_is_share_of_each_users_limit():
    fig = charts.utilization_heatmap(DAILY, {"u1": 1000, "u2": -1}, {"u1": "Ann"})
    heat = fig.data[0]
    rows = dict(zip(heat.y, heat.z.tolist()))
    assert rows["Ann"] == [80.0, 10.0]
    assert all(pd.isna(v) for v in rows["u2"])  # unlimited users have no share


def test_request_sizes_use_actual_tokens_once_settled():
    events = pd.DataFrame([{"status": "settled", "actual_prompt": 90, "actual_completion": 10, "charged": 500,
                            "model": "m"},
                           {"status": "pending", "actual_prompt": None, "actual_completion": None, "charged": 40,
                            "model": "m"},
                           {"status": "denied", "actual_prompt": None, "actual_completion": None, "charged": 0,
                            "model": "m"}])
    fig = charts.size_histogram(events)
    counts = fig.data[0].y.tolist()
    assert sum(counts) == 2 and len(counts) == 30
    centers = [x for x, n in zip(fig.data[0].x, counts) if n]
    assert 30 < centers[0] < 50 and 80 < centers[1] < 120  # 40 and 100 land in their log bins


def test_display_names_are_unique():
    labels = charts.display_names(["a1234567", "b7654321", "c1"], {"a1234567": "Wu Ting", "b7654321": "Wu Ting"})
    assert labels == {"a1234567": "Wu Ting (a12345)", "b7654321": "Wu Ting (b76543)", "c1": "c1"}


def test_top_bar_and_estimate_charts():
    top = charts.top_bar(DAILY.groupby("user_id", as_index=False)["tokens"].sum(), "user_id", limit=1)
    assert top.data[0].y.tolist() == ["u2"]
    events = pd.DataFrame({"actual_prompt": [100.0, 200.0], "est_prompt": [110, 190], "model": ["a", "b"],
                           "error_pct": [10.0, -5.0]})
    assert charts.estimate_scatter(events).data[-1].name == "y = x"
    assert len(charts.error_histogram(events).data) == 2
