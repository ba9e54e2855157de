"""Check+settle pairs per second on the Redis store, from one process and from 4, next to the TinyDB store.

Starts its own redis-server on a free loopback port (or uses --url), then runs, for each
store: N pairs of `charge`+`settle` called directly (three budgets, as the engine passes),
and N pairs of `Engine.check` (short body) + `Engine.settle` (OpenAI usage) — from one
process, and from 4 processes at once (standing in for 4 Open WebUI nodes; note that this
machine may have fewer cores than that). The TinyDB store runs in the same run when its
module exists. Goal (DESIGN.md): ≥ 2,000 pairs per second from one process on Redis.

    python bench/bench_redis.py            # 4,000 pairs per case, and history queries on 1,000 users × 365 days
    python bench/bench_redis.py --quick    # 500 pairs per case, history of 100 users × 30 days: a smoke run
Prints a table and writes bench/results/redis.json.

History: the year of daily rollups (1,000 users × 3 models) and one ledger event per user and
day are bulk-loaded into Redis (`put_history`), then the panel's queries are timed: every
user's monthly and daily usage over the year, over the last week, one user's year, one day of ledger.
"""
from __future__ import annotations

import argparse
import importlib.util
import json
import multiprocessing
import pathlib
import platform
import random
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from datetime import datetime, timezone

ROOT = pathlib.Path(__file__).resolve().parent
sys.path.insert(0, str(ROOT.parent))
sys.path.insert(0, str(ROOT))

from store_history import daily_rows, days_before, ledger_events  # noqa: E402

from tokenlimit_core import Engine, Policy, UserInfo  # noqa: E402
from tokenlimit_core.store import (BudgetCharge, ChargeRequest, CounterKey, LedgerEvent, Settlement,  # noqa: E402
                                   open_store)

MODELS = ("gpt-4o", "llama3:8b", "qwen3:14b")
USERS = 100
BODY = {"messages": [{"role": "user", "content": "Summarise the meeting notes in three bullet points."}]}
REPLY = {"usage": {"prompt_tokens": 120, "completion_tokens": 80}}
GOAL = 2000


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


def direct_pairs(url: str, pairs: int, tag: str, ready=lambda: None) -> tuple[list[float], float, float]:
    """Seconds per charge+settle pair calling the store directly, and when the timed loop started and ended."""
    store, rng, day = open_store(url), random.Random(tag), datetime.now(timezone.utc).date().isoformat()
    end, out = time.time() + 86400, []
    store.policy_revision()  # connect before timing
    ready()
    started = time.perf_counter()
    for i in range(pairs):
        user, model = f"user{rng.randrange(USERS):03d}", rng.choice(MODELS)
        budgets = (BudgetCharge(CounterKey(f"user:{user}:total", day), 10**12, end),
                   BudgetCharge(CounterKey(f"user:{user}:model:{model}", day), 10**12, end),
                   BudgetCharge(CounterKey(f"shared:{model}", day), -1, end))
        rid = f"{tag}-{i}"
        event = LedgerEvent(request_id=rid, ts=time.time(), day=day, user_id=user, model=model,
                            est_prompt=900, est_completion=450)
        t0 = time.perf_counter()
        store.charge(ChargeRequest(rid, 1350, budgets, event))
        store.settle(rid, Settlement(rng.randint(500, 1500), rng.randint(50, 900), "openai"), time.time())
        out.append(time.perf_counter() - t0)
    finished = time.perf_counter()
    store.close()
    return out, started, finished


def engine_pairs(url: str, pairs: int, tag: str, ready=lambda: None) -> tuple[list[float], float, float]:
    """Seconds per Engine.check+Engine.settle pair (users, models and caches warmed first), and the loop's times."""
    store, rng = open_store(url), random.Random(tag)
    engine = Engine(store, seed=Policy(roles={"user": 10**12}, model_limits={"gpt-4o": 10**12}))
    for u in range(USERS):  # every user and model once: directory, message cache, each model's tokenizer
        for model in MODELS:
            engine.check(UserInfo(f"user{u:03d}", role="user"), model, BODY, request_id=f"{tag}-warm-{u}-{model}")
    ready()
    out, started = [], time.perf_counter()
    for i in range(pairs):
        rid = f"{tag}-{i}"
        t0 = time.perf_counter()
        engine.check(UserInfo(f"user{rng.randrange(USERS):03d}", role="user"), rng.choice(MODELS), BODY,
                     request_id=rid)
        engine.settle(rid, REPLY)
        out.append(time.perf_counter() - t0)
    finished = time.perf_counter()
    store.close()
    return out, started, finished


KINDS = {"direct": direct_pairs, "engine": engine_pairs}


def _node(kind: str, url: str, pairs: int, tag: str, barrier, out) -> None:
    out.put(KINDS[kind](url, pairs, tag, ready=barrier.wait))  # all nodes start timing together


def run_case(kind: str, url: str, pairs: int, processes: int, tag: str) -> dict:
    """One case: latency per pair and pairs per second over the whole wall time."""
    if processes == 1:
        samples, started, finished = KINDS[kind](url, pairs, tag)
        wall = finished - started
    else:  # perf_counter is the system-wide monotonic clock, comparable across processes
        ctx = multiprocessing.get_context("spawn")
        barrier, out = ctx.Barrier(processes), ctx.Queue()
        procs = [ctx.Process(target=_node, args=(kind, url, pairs // processes, f"{tag}-p{n}", barrier, out))
                 for n in range(processes)]
        for p in procs:
            p.start()
        parts = [out.get(timeout=600) for _ in procs]
        for p in procs:
            p.join()
        samples = [s for part in parts for s in part[0]]
        wall = max(p[2] for p in parts) - min(p[1] for p in parts)
    ms = [s * 1000 for s in samples]
    return {"kind": kind, "processes": processes, "pairs": len(samples), "wall_s": wall,
            "pairs_per_s": len(samples) / wall, "p50_ms": statistics.median(ms), "p99_ms": percentile(ms, 0.99),
            "mean_ms": statistics.fmean(ms)}


def history_queries(url: str, users: int, days: int, repeat: int) -> dict:
    """Bulk-load `days` of history for `users`, then time the panel's queries (median of `repeat`)."""
    store, today = open_store(url), datetime.now(timezone.utc).date()
    day_list = days_before(today, days)
    started = time.perf_counter()
    store.put_history(daily_rows(users, day_list), ledger_events(users, day_list))
    out: dict = {"users": users, "days": days, "daily_rows": users * days * len(MODELS), "events": users * days,
                 "load_s": time.perf_counter() - started}
    last_day = day_list[-1]
    day_start = datetime.fromisoformat(last_day).replace(tzinfo=timezone.utc).timestamp()
    queries = {
        "monthly_usage, everyone, whole period": lambda: store.monthly_usage(day_list[0][:7], last_day[:7]),
        "daily_usage, everyone, whole period": lambda: store.daily_usage(day_list[0], last_day),
        "daily_usage, everyone, last 7 days": lambda: store.daily_usage(day_list[-7], last_day),
        "daily_usage, one user, whole period": lambda: store.daily_usage(day_list[0], last_day, "user0007"),
        "ledger, everyone, one day": lambda: store.ledger(day_start, day_start + 86400),
        "ledger, one user, whole period": lambda: store.ledger(0, day_start + 86400, "user0007"),
    }
    out["queries"] = {}
    for name, query in queries.items():
        times, rows = [], 0
        for _ in range(repeat):
            t0 = time.perf_counter()
            rows = len(query())
            times.append(time.perf_counter() - t0)
        out["queries"][name] = {"median_ms": statistics.median(times) * 1000, "max_ms": max(times) * 1000,
                                "rows": rows}
    store.close()
    return out


def start_redis() -> tuple[subprocess.Popen, str]:
    """A private redis-server on a free loopback port, without persistence (as the tests run it)."""
    binary = shutil.which("redis-server")
    if not binary:
        raise SystemExit("redis-server is not installed (Debian: apt-get install redis-server), or pass --url")
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    proc = subprocess.Popen([binary, "--port", str(port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no"],
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    for _ in range(200):
        try:
            socket.create_connection(("127.0.0.1", port), timeout=0.2).close()
            return proc, f"redis://127.0.0.1:{port}/0"
        except OSError:
            time.sleep(0.05)
    proc.kill()
    raise SystemExit("redis-server did not start")


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="500 pairs per case: a smoke run")
    parser.add_argument("--pairs", type=int, help="pairs per case (default 4,000)")
    parser.add_argument("--processes", type=int, default=4)
    parser.add_argument("--history", default=None, metavar="USERSxDAYS",
                        help="history size for the query timings (default 1000x365, quick 100x30; 0 = skip)")
    parser.add_argument("--url", help="an existing Redis (a fresh key prefix is used; nothing else is touched)")
    parser.add_argument("--out", default=str(ROOT / "results" / "redis.json"))
    args = parser.parse_args(argv)
    pairs = args.pairs or (500 if args.quick else 4000)
    proc, base = (None, args.url) if args.url else start_redis()
    prefix = f"bench{int(time.time())}:"
    work = pathlib.Path(tempfile.mkdtemp(prefix="bench-redis-"))
    stores = {"redis": base + ("&" if "?" in base else "?") + f"prefix={prefix}"}
    if importlib.util.find_spec("tokenlimit_core.store.tinydb_store"):
        stores["tinydb"] = f"tinydb://{work}/store"
    else:
        print("the TinyDB store (tokenlimit_core/store/tinydb_store.py) is absent: no comparison in this run")
    results: dict = {"config": {"pairs": pairs, "processes": args.processes, "users": USERS, "cpus": _cpus(),
                                "load_average_before": _load(),
                                "python": platform.python_version(), "when": datetime.now(timezone.utc).isoformat()},
                     "cases": []}
    try:
        for name, url in stores.items():
            for kind in KINDS:
                for processes in (1, args.processes):
                    print(f"{name}: {kind} pairs from {processes} process(es)...", flush=True)
                    case = run_case(kind, url, pairs, processes, f"{name}-{kind}-{processes}")
                    results["cases"].append({"store": name, **case})
        history = args.history or ("100x30" if args.quick else "1000x365")
        if history != "0":
            h_users, h_days = (int(x) for x in history.lower().split("x"))
            print(f"redis: loading {h_users} users × {h_days} days of history, then timing queries...", flush=True)
            results["history"] = history_queries(base + ("&" if "?" in base else "?") + f"prefix={prefix}h:",
                                                 h_users, h_days, repeat=3 if not args.quick else 2)
        results["config"]["load_average_after"] = _load()
        if proc is not None:
            results["config"]["redis_version"] = open_store(stores["redis"]).info().get("redis_version")
    finally:
        if proc is not None:
            proc.terminate()
            proc.wait(10)
        shutil.rmtree(work, ignore_errors=True)
    report(results)
    pathlib.Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    pathlib.Path(args.out).write_text(json.dumps(results, indent=2) + "\n")
    print(f"\nsaved {args.out}")
    return 0


def _load() -> list[float]:
    """The machine's 1/5/15-minute load averages: other work on the same cores skews every figure."""
    import os
    return [round(x, 2) for x in os.getloadavg()]


def _cpus() -> int:
    try:
        import os
        return len(os.sched_getaffinity(0))
    except (AttributeError, OSError):
        return multiprocessing.cpu_count()


def report(r: dict) -> None:
    """Print the table, the ratios measured in this run, and whether the goal was met."""
    cfg = r["config"]
    print(f"\n{cfg['pairs']} pairs per case, {cfg['users']} users, {cfg['cpus']} CPU(s); loopback Redis "
          f"{cfg.get('redis_version', '')}; load average before/after {cfg['load_average_before'][0]}"
          f"/{cfg['load_average_after'][0]}\n")
    print(f"{'store':<8}{'pair':<8}{'procs':>6}{'pairs/s':>10}{'p50 ms':>9}{'p99 ms':>9}{'mean ms':>9}")
    by = {(c["store"], c["kind"], c["processes"]): c for c in r["cases"]}
    for c in r["cases"]:
        print(f"{c['store']:<8}{c['kind']:<8}{c['processes']:>6}{c['pairs_per_s']:>10,.0f}{c['p50_ms']:>9.3f}"
              f"{c['p99_ms']:>9.3f}{c['mean_ms']:>9.3f}")
    print()
    n = cfg["processes"]
    for kind in KINDS:
        one, many = by.get(("redis", kind, 1)), by.get(("redis", kind, n))
        line = f"redis {kind}: {n} processes / 1 process = {many['pairs_per_s'] / one['pairs_per_s']:.2f}×"
        tiny = by.get(("tinydb", kind, 1)), by.get(("tinydb", kind, n))
        if all(tiny):
            line += (f"; redis / tinydb = {one['pairs_per_s'] / tiny[0]['pairs_per_s']:.2f}× (1 process), "
                     f"{many['pairs_per_s'] / tiny[1]['pairs_per_s']:.2f}× ({n} processes)")
        print(line)
    if "history" in r:
        h = r["history"]
        print(f"\nhistory on redis: {h['users']:,} users × {h['days']} days ({h['daily_rows']:,} daily rows, "
              f"{h['events']:,} ledger events) loaded in {h['load_s']:.1f} s")
        print(f"{'query':<42}{'rows':>10}{'median ms':>12}{'max ms':>10}")
        for name, q in h["queries"].items():
            print(f"{name:<42}{q['rows']:>10,}{q['median_ms']:>12.1f}{q['max_ms']:>10.1f}")
    best = by[("redis", "engine", 1)]["pairs_per_s"]
    print(f"\ngoal (≥ {GOAL:,} check+settle pairs/s from one process, through the engine): "
          f"{'met' if best >= GOAL else 'NOT met'} ({best:,.0f}/s)")


if __name__ == "__main__":
    raise SystemExit(main())
