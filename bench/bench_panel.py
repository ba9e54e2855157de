"""Panel speed: overview (and users page) render time in AppTest for 1,000 users × 365 days, and the loading behind it.

Fills a store with `demo.generate_history` (one daily rollup row per user, day and model, and the
user directory) plus the demo policy, then measures, in the same run:
- the data loading the overview does (rollups for the chosen window, directory, each user's
  total-budget counter, today's ledger), straight against the store;
- the whole overview page in `streamlit.testing.v1.AppTest`: cold (caches cleared before each
  run, so every read hits the store) and warm (st.cache_data filled, as for an admin clicking around),
  for the default 30-day window and for 365 days; and the users page with one user's history.
Goal (DESIGN.md): the overview renders in ≤ 2 s.

    python bench/bench_panel.py                      # memory and tinydb, 1,000 users × 365 days × 3 models
    python bench/bench_panel.py --backends memory --quick   # 100 users × 60 days: a smoke run
Prints a table and writes bench/results/panel.json (panel-quick.json with --quick).
"""
from __future__ import annotations

import argparse
import json
import os
import pathlib
import platform
import statistics
import sys
import tempfile
import time
import uuid
from datetime import datetime, timezone

ROOT = pathlib.Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

GOAL_S = 2.0


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


def stats(seconds: list[float]) -> dict:
    return {"median_s": statistics.median(seconds), "p99_s": percentile(seconds, 0.99), "min_s": min(seconds),
            "max_s": max(seconds), "n": len(seconds)}


def build(url: str, users: int, days: int):
    """A store with the demo policy and `days` of rollups for `users` users × 3 models; (store, seconds)."""
    from tokenlimit_core import open_store
    from tokenlimit_core.demo import demo_policy, generate_history

    store = open_store(url)
    start = time.perf_counter()
    store.save_policy(demo_policy(users).to_json(), "bench")
    rows = generate_history(store, users=users, days=days, models=3, seed=0, events_per_day=200)
    return store, time.perf_counter() - start, rows


def loading(store, url: str, repeats: int) -> dict:
    """What the overview reads, timed straight against the store (no Streamlit)."""
    import streamlit as st

    from app_pages.common import data
    from tokenlimit_core import Policy, WindowSpec, window_bounds

    policy = Policy.from_json(store.load_policy().policy_json)
    now = datetime.now(timezone.utc)
    today = data.today(policy, now)
    out: dict[str, list[float]] = {"rollups_30d": [], "months_365d": [], "directory": [], "window_totals": [],
                                   "ledger_today": []}
    for _ in range(repeats):
        st.cache_data.clear()
        t0 = time.perf_counter()
        data.daily(store, url, *data.day_range(today, 30))
        t1 = time.perf_counter()
        first, last = data.day_range(today, 365)
        data.monthly(store, url, first[:7], last[:7])  # the overview's year view reads month rollups
        t2 = time.perf_counter()
        directory = data.users(store, url)
        t3 = time.perf_counter()
        data.window_totals(store, url, policy.to_json(), directory, now.timestamp())
        t4 = time.perf_counter()
        start = window_bounds(WindowSpec("day", policy.reset_hour, policy.timezone), now)[0]
        data.ledger(store, url, start.timestamp(), data.minute_ceiling(now))
        t5 = time.perf_counter()
        for name, seconds in zip(out, (t1 - t0, t2 - t1, t3 - t2, t4 - t3, t5 - t4)):
            out[name].append(seconds)
    return {name: stats(values) for name, values in out.items()}


def render(url: str, repeats: int, days: int, cold: bool, page: str = "overview") -> dict:
    """A page (overview, or users with its first user picked) in AppTest, signed in; timing of `AppTest.run()`."""
    import streamlit as st
    from streamlit.testing.v1 import AppTest

    os.environ["TOKEN_LIMIT_STORE_URL"] = url
    os.environ["TOKEN_LIMIT_ADMIN_PASSWORD"] = uuid.uuid4().hex
    at = AppTest.from_file(str(ROOT / "app.py"), default_timeout=300)
    at.session_state["panel_user"] = {"actor": "bench", "can_write": True, "via": "password"}
    at.run()  # opens the store once (st.cache_resource), as a running panel has
    assert not at.exception, [e.value for e in at.exception]
    if page != "overview":
        at.switch_page(f"app_pages/{page}.py").run()
    days_key = {"overview": "ov_days", "users": "us_days"}[page]
    if days != 30:
        at.radio(key=days_key).set_value(days).run()
    times = []
    for _ in range(repeats):
        if cold:
            st.cache_data.clear()
        t0 = time.perf_counter()
        at.run()
        times.append(time.perf_counter() - t0)
        assert not at.exception and not at.error, [e.value for e in at.exception] + [e.value for e in at.error]
        assert len(at.get("plotly_chart")) >= (4 if page == "overview" else 1)
    return stats(times)


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--backends", default="memory,tinydb")
    parser.add_argument("--users", type=int, default=1000)
    parser.add_argument("--days", type=int, default=365)
    parser.add_argument("--repeats", type=int, default=7)
    parser.add_argument("--quick", action="store_true", help="100 users × 60 days, 3 repeats")
    args = parser.parse_args(argv)
    if args.quick:
        args.users, args.days, args.repeats = 100, 60, 3
    import logging

    logging.getLogger("streamlit").setLevel(logging.ERROR)
    results = {"config": {"users": args.users, "days": args.days, "models": 3, "repeats": args.repeats,
                          "goal_s": GOAL_S, "python": platform.python_version(), "cpus": os.cpu_count(),
                          "load_average_at_start": list(os.getloadavg()),
                          "when": datetime.now(timezone.utc).isoformat()}}
    for backend in args.backends.split(","):
        with tempfile.TemporaryDirectory(prefix="bench-panel-") as folder:
            url = f"memory://bench-panel-{uuid.uuid4().hex}" if backend == "memory" else f"tinydb://{folder}/store"
            store, load_s, rows = build(url, args.users, args.days)
            print(f"{backend}: loaded {rows:,} daily rows for {args.users:,} users in {load_s:.1f} s", flush=True)
            results[backend] = {
                "rows": rows, "build_s": load_s, "store_info": {k: v for k, v in store.info().items() if k != "url"},
                "loading": loading(store, url, args.repeats),
                "overview_cold_30d": render(url, args.repeats, 30, cold=True),
                "overview_warm_30d": render(url, args.repeats, 30, cold=False),
                "overview_cold_365d": render(url, max(3, args.repeats // 2), 365, cold=True),
                "users_cold_30d": render(url, args.repeats, 30, cold=True, page="users"),
                "users_cold_365d": render(url, max(3, args.repeats // 2), 365, cold=True, page="users"),
            }
            store.close()
    print_table(results)
    out = ROOT / "bench" / "results" / ("panel-quick.json" if args.quick else "panel.json")
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(results, indent=2, default=str) + "\n")
    print(f"\nwrote {out.relative_to(ROOT)}")
    return 0


def print_table(results: dict) -> None:
    cfg = results["config"]
    print(f"\nPanel overview, {cfg['users']:,} users × {cfg['days']} days × 3 models, "
          f"{cfg['repeats']} runs each (goal: render ≤ {cfg['goal_s']:.1f} s)")
    print(f"{'backend':8} {'what':28} {'median s':>9} {'p99 s':>8} {'vs goal':>8}")
    for backend, res in results.items():
        if backend == "config":
            continue
        for name, value in res["loading"].items():
            print(f"{backend:8} {'load ' + name:28} {value['median_s']:9.3f} {value['p99_s']:8.3f} {'':>8}")
        for name in ("overview_cold_30d", "overview_warm_30d", "overview_cold_365d", "users_cold_30d",
                     "users_cold_365d"):
            value = res[name]
            ratio = value["median_s"] / cfg["goal_s"]
            print(f"{backend:8} {name.replace('_', ' '):28} {value['median_s']:9.3f} {value['p99_s']:8.3f} "
                  f"{ratio:7.2f}×")
        load = sum(v["median_s"] for k, v in res["loading"].items() if k != "months_365d")
        cold = res["overview_cold_30d"]["median_s"]
        print(f"{backend:8} {'data loading share of cold 30d':28} {load / cold:9.0%}")


if __name__ == "__main__":
    sys.exit(main())
