"""Estimation cost: our estimate versus raw tiktoken encoding, cold and on the next turn.

A 100-message chat of about 20,000 tokens built from the shared calibration
texts. Goals (DESIGN.md): cold overhead ≤ 20 % over raw encoding; turn n+1 in
≤ 10 % of the cold time. Prints a table and writes bench/results/estimate.json.

    python bench/bench_estimate.py [--repeat 30]
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

from tokenlimit_core.estimate import Estimator, Tokenizer  # noqa: E402
from tokenlimit_core.policy import Calibration  # noqa: E402

CALIBRATION = ROOT.parent / "shared" / "data" / "calibration" / "calibration.jsonl"


def build_chat(target_tokens: int = 20_000, messages: int = 100) -> list[dict]:
    """Real text from the calibration set, cut into `messages` turns totalling about `target_tokens`."""
    texts = []
    with open(CALIBRATION, encoding="utf-8") as fh:
        for line in fh:
            row = json.loads(line)
            texts += [m["content"] for m in row["messages"] if isinstance(m["content"], str)]
    encoding = Tokenizer("cl100k_base")._encoding()[0]
    per_message = target_tokens // messages
    chat, i = [], 0
    while len(chat) < messages:
        text = texts[i % len(texts)]
        i += 1
        tokens = encoding.encode_ordinary(text)
        if len(tokens) < per_message:
            continue
        chat.append({"role": "user" if len(chat) % 2 == 0 else "assistant",
                     "content": encoding.decode(tokens[:per_message])})
    return chat


def percentile(values, q):
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(round(q * (len(ordered) - 1))))]


def timed(fn, repeat):
    out = []
    for _ in range(repeat):
        start = time.perf_counter()
        fn()
        out.append((time.perf_counter() - start) * 1000)
    return out


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeat", type=int, default=30)
    args = parser.parse_args(argv)

    chat = build_chat()
    encoding = Tokenizer("cl100k_base")._encoding()[0]
    total_tokens = sum(len(encoding.encode_ordinary(m["content"])) for m in chat)
    body = {"messages": chat}
    next_turn = {"messages": chat + [{"role": "user", "content": "And what does that mean for my code?"}]}

    def raw():
        for m in chat:
            encoding.encode_ordinary(m["content"])

    def cold():
        Estimator().estimate(body, "gpt-4", Calibration())

    warm = Estimator()
    warm.estimate(body, "gpt-4", Calibration())

    def turn():
        warm.estimate(next_turn, "gpt-4", Calibration())

    raw(), cold()  # load the tokenizer before timing
    # Interleave the runs so machine noise hits all three alike.
    results = {"raw tiktoken": [], "estimate, cold": [], "estimate, turn n+1": []}
    for _ in range(args.repeat):
        results["raw tiktoken"] += timed(raw, 1)
        results["estimate, cold"] += timed(cold, 1)
        results["estimate, turn n+1"] += timed(turn, 1)

    med = {k: statistics.median(v) for k, v in results.items()}
    overhead = med["estimate, cold"] / med["raw tiktoken"] - 1
    turn_ratio = med["estimate, turn n+1"] / med["estimate, cold"]
    print(f"chat: {len(chat)} messages, {total_tokens:,} cl100k tokens; {args.repeat} runs each\n")
    print(f"{'case':<22}{'median ms':>12}{'p99 ms':>10}")
    for name, values in results.items():
        print(f"{name:<22}{med[name]:>12.2f}{percentile(values, 0.99):>10.2f}")
    print(f"\ncold overhead over raw tiktoken: {overhead:+.1%}  (goal ≤ +20%)")
    print(f"turn n+1 / cold:                {turn_ratio:.1%}  (goal ≤ 10%)")
    out = ROOT / "bench" / "results" / "estimate.json"
    out.write_text(json.dumps({"messages": len(chat), "tokens": total_tokens, "repeat": args.repeat,
                               "median_ms": med, "p99_ms": {k: percentile(v, 0.99) for k, v in results.items()},
                               "cold_overhead": overhead, "turn_over_cold": turn_ratio}, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
