"""Prompt-estimate accuracy before and after calibration, per model family and language mix.

Fits a calibration per family on ~60 % of ../shared/data/calibration/calibration.jsonl
(split by id hash) and reports, on the other ~40 %, the median and 90th-percentile
absolute percentage error of the integer prompt estimate: with the default
calibration (OpenAI's counting rule on the path's encoding), with plain cl100k
tokens times one factor per family (the median ratio, no overheads), and with the
fitted calibration. Two paths: each family's own encoding where quicktok-v1 serves
it (what the engine uses), and every family from cl100k_base (the twin
calibrations for machines without quicktok). Goal (DESIGN.md): median ≤ 2 %, p90 ≤ 6 %.
With --splits N it also fits and checks on N other random 60/40 splits and
reports each cell's worst figures, which says how far one split's figures carry.
Prints a table and writes bench/results/accuracy.json.

    python bench/bench_accuracy.py [--data PATH] [--splits N]
"""
from __future__ import annotations

import argparse
import hashlib
import json
import pathlib
import statistics
import sys
import time

ROOT = pathlib.Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from tokenlimit_core import calibrate  # noqa: E402
from tokenlimit_core.estimate import Estimator  # noqa: E402
from tokenlimit_core.policy import Calibration  # noqa: E402

DATA = ROOT.parent / "shared" / "data" / "calibration" / "calibration.jsonl"
FAMILIES = ("gpt-4o", "gpt-4", "llama3", "qwen3")
MEDIAN_GOAL, P90_GOAL = 2.0, 6.0


def one_scale(samples: list[calibrate.Sample]) -> Calibration:
    """Plain cl100k tokens times one factor per family (the median of actual / tokens), no overheads."""
    scale = statistics.median(s.prompt / max(1, s.features.tokens) for s in samples)
    return Calibration(overhead=0, tokens=scale, per_message=0, per_name=0, per_image=0)


def measure(fit_rows, check_rows, encoding, estimator, source):
    """Per family: error frames (default, one scale, calibrated), the calibration, fit seconds and method."""
    tables, calibrations, seconds, methods = {"default": [], "cl100k × scale": [], "calibrated": []}, {}, {}, {}
    for family in FAMILIES:
        start = time.perf_counter()
        fit_samples = calibrate.samples(fit_rows, family, estimator, encoding=encoding)
        calibration = calibrate.fit(fit_samples, source=source)
        seconds[family] = time.perf_counter() - start
        check = calibrate.samples(check_rows, family, estimator, encoding=encoding)
        methods[family] = check[0].method
        calibrations[family] = calibration
        tables["default"].append(calibrate.errors(check, Calibration(), family))
        scale_samples = fit_samples if encoding else calibrate.samples(fit_rows, family, estimator,
                                                                       encoding="cl100k_base")
        scale_check = check if encoding else calibrate.samples(check_rows, family, estimator, encoding="cl100k_base")
        tables["cl100k × scale"].append(calibrate.errors(scale_check, one_scale(scale_samples), family))
        tables["calibrated"].append(calibrate.errors(check, calibration, family))
    merged = None
    for name, frames in tables.items():
        table = calibrate.error_table(frames).rename(columns={"median": f"{name} median", "p90": f"{name} p90"})
        merged = table if merged is None else merged.merge(table, on=["family", "mix", "rows"])
    return merged, list(tables), calibrations, seconds, methods


def print_table(merged, names, methods, title) -> list[str]:
    print(f"\n{title}")
    print("  features by " + ", ".join(f"{f}: {m}" for f, m in methods.items()))
    print(f"{'family':<8}{'mix':<7}{'rows':>5}   {'default':>15}   {'cl100k × scale':>15}   {'calibrated':>15}  goal")
    misses = []
    for row in merged.to_dict("records"):
        cells = [f"{row[name + ' median']:6.2f} / {row[name + ' p90']:6.2f}" for name in names]
        ok = row["calibrated median"] <= MEDIAN_GOAL and row["calibrated p90"] <= P90_GOAL
        if not ok and row["mix"] != "all":
            misses.append(f"{row['family']}/{row['mix']}")
        print(f"{row['family']:<8}{row['mix']:<7}{row['rows']:>5}   {cells[0]:>15}   {cells[1]:>15}   "
              f"{cells[2]:>15}  {'ok' if ok else 'MISSED'}")
    print(f"goal: median ≤ {MEDIAN_GOAL} %, p90 ≤ {P90_GOAL} % per family and mix; "
          f"missed: {', '.join(misses) if misses else 'none'}")
    return misses


def resplit(conversations: list[dict], salt: int) -> tuple[list[dict], list[dict]]:
    """Another deterministic ~60/40 split: by a hash of each id with `salt`."""
    fit_rows, check_rows = [], []
    for row in conversations:
        bucket = int(hashlib.sha256(f"{row['id']}:{salt}".encode()).hexdigest(), 16) % 1000
        (fit_rows if bucket < 600 else check_rows).append(row)
    return fit_rows, check_rows


def spread(conversations: list[dict], splits: int, estimator) -> dict:
    """Per path, family and mix: the worst median and p90 error over `splits` other random splits."""
    worst: dict = {}
    for salt in range(1, splits + 1):
        fit_rows, check_rows = resplit(conversations, salt)
        for path, encoding in (("own", None), ("cl100k", "cl100k_base")):
            for family in FAMILIES:
                calibration = calibrate.fit(calibrate.samples(fit_rows, family, estimator, encoding=encoding))
                table = calibrate.error_table(calibrate.errors(
                    calibrate.samples(check_rows, family, estimator, encoding=encoding), calibration, family))
                for row in table.to_dict("records"):
                    cell = worst.setdefault(path, {}).setdefault(f"{family}/{row['mix']}", [0.0, 0.0, 0])
                    cell[0], cell[1] = max(cell[0], row["median"]), max(cell[1], row["p90"])
                    cell[2] += row["median"] > MEDIAN_GOAL or row["p90"] > P90_GOAL
    print(f"\nworst over {splits} other random 60/40 splits (median / p90), and how many splits missed the goal:")
    print(f"{'family/mix':<16}{'own':>24}{'cl100k':>24}")
    for name in worst["own"]:
        cells = [f"{worst[p][name][0]:6.2f} / {worst[p][name][1]:6.2f} ({worst[p][name][2]}/{splits})"
                 for p in ("own", "cl100k")]
        print(f"{name:<16}{cells[0]:>24}{cells[1]:>24}")
    return {p: {k: {"worst_median": round(v[0], 3), "worst_p90": round(v[1], 3), "splits_missed": v[2]}
                for k, v in cells.items()} for p, cells in worst.items()}


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", default=str(DATA))
    parser.add_argument("--splits", type=int, default=0, help="also report the worst cells over N other splits")
    args = parser.parse_args(argv)

    conversations = calibrate.load_conversations(args.data)
    fit_rows, check_rows = calibrate.split(conversations)
    estimator = Estimator()
    source = pathlib.Path(args.data).name
    print(f"fit on {len(fit_rows)} conversations, checked on {len(check_rows)}")
    print("absolute percentage error of the prompt estimate on the check part (median / p90)")
    report = {"data": source, "fit_rows": len(fit_rows), "check_rows": len(check_rows),
              "goal": {"median": MEDIAN_GOAL, "p90": P90_GOAL}, "paths": {}}
    for path, encoding, title in (
            ("own", None, "each family's own encoding where installed (quicktok-v1: o200k_base, qwen3, llama3), "
                          "else cl100k_base — what the engine uses"),
            ("cl100k", "cl100k_base", "every family from cl100k_base features (the twin calibrations, "
                                      "used where quicktok-v1 is missing)")):
        merged, names, calibrations, seconds, methods = measure(fit_rows, check_rows, encoding, estimator, source)
        misses = print_table(merged, names, methods, f"[{path}] {title}:")
        report["paths"][path] = {
            "methods": methods, "missed": misses, "table": json.loads(merged.round(3).to_json(orient="records")),
            "fit_seconds": {f: round(s, 3) for f, s in seconds.items()},
            "calibrations": {f: c.model_dump() for f, c in calibrations.items()}}
    if args.splits > 0:
        report["other_splits"] = {"splits": args.splits, "worst": spread(conversations, args.splits, estimator)}
    out = ROOT / "bench" / "results" / "accuracy.json"
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(report, indent=2, ensure_ascii=False))
    print(f"\nwrote {out.relative_to(ROOT)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
