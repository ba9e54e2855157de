"""Prompt-estimate accuracy before and after calibration, per model family and language mix.

Fits a calibration per family on ~60 % of ../shared/data/calibration/calibration.jsonl
(split by id hash) and reports, on the other ~40 %, the median and 90th-percentile
absolute percentage error of the integer prompt estimate: with the default
calibration (OpenAI's counting rule on cl100k), with plain cl100k tokens times one
factor per family (the median ratio, no overheads), and with the fitted calibration. Goal (DESIGN.md): median ≤ 2 %, p90 ≤ 6 %.
Prints a table and writes bench/results/accuracy.json.

    python bench/bench_accuracy.py [--data PATH]
"""
from __future__ import annotations

import argparse
import json
import pathlib
import statistics
import sys
import time

ROOT = pathlib.Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from tokenlimit_core import calibrate  # noqa: E402
from tokenlimit_core.estimate import Estimator, apply_calibration  # noqa: E402
from tokenlimit_core.policy import Calibration  # noqa: E402

DATA = ROOT.parent / "shared" / "data" / "calibration" / "calibration.jsonl"
FAMILIES = ("gpt-4o", "gpt-4", "llama3", "qwen3")
MEDIAN_GOAL, P90_GOAL = 2.0, 6.0


def one_scale(samples: list[calibrate.Sample]) -> Calibration:
    """Plain cl100k tokens times one factor per family (the median of actual / tokens), no overheads."""
    scale = statistics.median(s.prompt / max(1, s.features.tokens) for s in samples)
    return Calibration(overhead=0, tokens=scale, per_message=0, per_name=0, per_image=0)


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", default=str(DATA))
    args = parser.parse_args(argv)

    fit_rows, check_rows = calibrate.split(calibrate.load_conversations(args.data))
    estimator = Estimator()
    tables, calibrations, seconds = {"default": [], "cl100k × scale": [], "calibrated": []}, {}, {}
    method = ""
    for family in FAMILIES:
        start = time.perf_counter()
        fit_samples = calibrate.samples(fit_rows, family, estimator)
        calibration = calibrate.fit(fit_samples, source=pathlib.Path(args.data).name)
        seconds[family] = time.perf_counter() - start
        check = calibrate.samples(check_rows, family, estimator)
        method = check[0].method
        calibrations[family] = calibration
        tables["default"].append(calibrate.errors(check, Calibration(), family))
        tables["cl100k × scale"].append(calibrate.errors(check, one_scale(fit_samples), family))
        tables["calibrated"].append(calibrate.errors(check, calibration, family))
    merged = None
    for name, frames in tables.items():
        table = calibrate.error_table(frames).rename(columns={"median": f"{name} median", "p90": f"{name} p90"})
        merged = table if merged is None else merged.merge(table, on=["family", "mix", "rows"])

    print(f"fit on {len(fit_rows)} conversations, checked on {len(check_rows)}; features by {method}")
    print("absolute percentage error of the prompt estimate on the check part (median / p90):\n")
    print(f"{'family':<8}{'mix':<7}{'rows':>5}   {'default':>15}   {'cl100k × scale':>15}   {'calibrated':>15}  goal")
    misses = []
    for row in merged.to_dict("records"):
        cells = [f"{row[name + ' median']:6.2f} / {row[name + ' p90']:6.2f}" for name in tables]
        ok = row["calibrated median"] <= MEDIAN_GOAL and row["calibrated p90"] <= P90_GOAL
        if not ok and row["mix"] != "all":
            misses.append(f"{row['family']}/{row['mix']}")
        print(f"{row['family']:<8}{row['mix']:<7}{row['rows']:>5}   {cells[0]:>15}   {cells[1]:>15}   "
              f"{cells[2]:>15}  {'ok' if ok else 'MISSED'}")
    print(f"\ngoal: median ≤ {MEDIAN_GOAL} %, p90 ≤ {P90_GOAL} % per family and mix; "
          f"missed: {', '.join(misses) if misses else 'none'}")

    out = ROOT / "bench" / "results" / "accuracy.json"
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps({
        "data": pathlib.Path(args.data).name, "fit_rows": len(fit_rows), "check_rows": len(check_rows),
        "method": method, "goal": {"median": MEDIAN_GOAL, "p90": P90_GOAL}, "missed": misses,
        "table": json.loads(merged.round(3).to_json(orient="records")),
        "fit_seconds": {f: round(s, 3) for f, s in seconds.items()},
        "calibrations": {f: c.model_dump() for f, c in calibrations.items()},
    }, indent=2, ensure_ascii=False))
    print(f"wrote {out.relative_to(ROOT)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
