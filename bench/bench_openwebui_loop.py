"""How long the Function's inlet holds Open WebUI's event loop, for small requests and a 2 MB paste.

A ticker coroutine wakes every 1 ms on the same loop while `Filter.inlet` runs; its
longest gap is the loop's stall. The same request charged inline (Engine.check
called on the loop, as a naive filter would) is measured in the same run for
comparison. Goal (DESIGN.md): the Function never holds the loop more than 50 ms.
Prints a table and writes bench/results/openwebui_loop.json.

    python bench/bench_openwebui_loop.py [--repeat 15] [--store memory|tinydb]
"""
from __future__ import annotations

import argparse
import asyncio
import copy
import json
import pathlib
import statistics
import sys
import tempfile
import time
import uuid

ROOT = pathlib.Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from tokenlimit_core.openwebui import Filter  # noqa: E402
from tokenlimit_core.openwebui import adapter_common as common  # noqa: E402

FIXTURE = ROOT.parent / "shared" / "fixtures" / "openwebui" / "function_inlet_nonstream.json"
PASTE = ("lorem ipsum 汉字 dolor sit amet, " * 70000)[:2_000_000]


def percentile(values, q):
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(round(q * (len(ordered) - 1))))]


async def stall_of(call) -> tuple[float, float]:
    """(longest loop gap, duration) in ms while `call()` runs on this loop."""
    gaps, done = [], asyncio.Event()

    async def ticker():
        last = time.perf_counter()
        while not done.is_set():
            await asyncio.sleep(0.001)
            now = time.perf_counter()
            gaps.append(now - last)
            last = now

    task = asyncio.create_task(ticker())
    await asyncio.sleep(0.005)
    start = time.perf_counter()
    await call()
    duration = time.perf_counter() - start
    done.set()
    await task
    return max(gaps) * 1000, duration * 1000


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeat", type=int, default=15)
    parser.add_argument("--store", choices=["memory", "tinydb"], default="tinydb")
    args = parser.parse_args()
    params = json.loads(FIXTURE.read_text())["params"]
    folder = tempfile.mkdtemp(prefix="tokenlimit-loop-")
    flt = Filter()
    url = f"memory://{uuid.uuid4().hex}" if args.store == "memory" else f"tinydb://{folder}/store"
    flt.valves = flt.Valves(store_url=url, daily_token_limits='{"user": 1000000000}')

    def request(paste: bool):
        p = copy.deepcopy(params)
        if paste:
            p["body"]["messages"][0]["content"] = PASTE + uuid.uuid4().hex  # no cache hits
        return p

    async def via_filter(p):
        await flt.inlet(p["body"], __user__=p["__user__"], __metadata__=p["__metadata__"], __model__=p["__model__"])

    async def inline(p):  # what a filter that charges on the loop would do
        engine = flt._engines.get(flt.valves)
        common.check(engine, common.user_info(p["__user__"]), "gpt-4o-mini", p["body"], message_id=None,
                     base_model=None, source="api", task=None)

    async def run():
        await via_filter(request(False))  # warm up: open the store, load the tokenizer
        rows = {}
        for name, paste, fn in [("small request, Filter.inlet", False, via_filter),
                                ("2 MB paste, Filter.inlet", True, via_filter),
                                ("2 MB paste, charged on the loop", True, inline)]:
            samples = [await stall_of(lambda: fn(request(paste))) for _ in range(args.repeat)]
            stalls, durations = [s for s, _ in samples], [d for _, d in samples]
            rows[name] = {"stall_median_ms": statistics.median(stalls), "stall_p99_ms": percentile(stalls, 0.99),
                          "stall_max_ms": max(stalls), "inlet_median_ms": statistics.median(durations)}
        return rows

    rows = asyncio.run(run())
    inline_stall = rows["2 MB paste, charged on the loop"]["stall_median_ms"]
    print(f"store: {args.store}, repeat: {args.repeat}, goal: stall ≤ 50 ms")
    print(f"{'case':34} {'stall p50':>10} {'stall p99':>10} {'stall max':>10} {'inlet p50':>10} {'vs on-loop':>10}")
    for name, row in rows.items():
        ratio = row["stall_median_ms"] / inline_stall if inline_stall else float("nan")
        row["stall_ratio_to_on_loop"] = ratio
        print(f"{name:34} {row['stall_median_ms']:10.1f} {row['stall_p99_ms']:10.1f} {row['stall_max_ms']:10.1f} "
              f"{row['inlet_median_ms']:10.1f} {ratio:10.2f}")
    out = ROOT / "bench" / "results" / "openwebui_loop.json"
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps({"store": args.store, "repeat": args.repeat, "rows": rows}, indent=2) + "\n")
    print(f"wrote {out.relative_to(ROOT)}")


if __name__ == "__main__":
    main()
