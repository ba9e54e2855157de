"""Estimation cost: our estimate versus raw tiktoken encoding, cold and on the next turn.

A 100-message chat of about 20,000 tokens built from the shared calibration
texts. Goals (DESIGN.md): cold overhead ≤ 20 % over raw encoding; turn n+1 in
≤ 10 % of the cold time. Cases: gpt-4 with the counting rule (cl100k tokens
only), llama3 with its cl100k twin calibration, which weighs all 15 features
(the slowest path; used where quicktok-v1 is missing), turn n+1, and where quicktok-v1 is installed qwen3 against raw
quicktok qwen3 encoding. Prints a table and writes bench/results/estimate.json.

    python bench/bench_estimate.py [--repeat 30]
"""
from __future__ import annotations

import argparse
import json
import pathlib
import random
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


def fitted_calibration(family: str, encoding: str | None) -> Calibration:
    """The calibration `calibrate.fit` gives `family` on the shared data's fit part."""
    from tokenlimit_core import calibrate
    fit_rows, _ = calibrate.split(calibrate.load_conversations(CALIBRATION))
    return calibrate.fit(calibrate.samples(fit_rows, family, encoding=encoding))


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeat", type=int, default=30)
    args = parser.parse_args(argv)

    chat = build_chat()
    encoding = Tokenizer("cl100k_base")._encoding()[0]
    total_tokens = sum(len(encoding.encode_ordinary(m["content"])) for m in chat)
    body = {"messages": chat}
    next_turn = {"messages": chat + [{"role": "user", "content": "And what does that mean for my code?"}]}
    # llama3's cl100k twin weighs all 15 features (script counts, token kinds): the slowest estimate there is.
    every_feature = fitted_calibration("llama3", "cl100k_base")
    qwen_tokenizer = Tokenizer("qwen3")
    quicktok = qwen_tokenizer.method.startswith("quicktok:")

    def raw_tiktoken():
        for m in chat:
            encoding.encode_ordinary(m["content"])

    cases = {"raw tiktoken cl100k": raw_tiktoken,
             "estimate gpt-4, cold": lambda: Estimator().estimate(body, "gpt-4", Calibration()),
             "estimate, 15 features, cold": lambda: Estimator().estimate(body, "llama3", every_feature)}
    warm = Estimator()
    warm.estimate(body, "gpt-4", Calibration())
    cases["estimate gpt-4, turn n+1"] = lambda: warm.estimate(next_turn, "gpt-4", Calibration())
    if quicktok:
        qwen = qwen_tokenizer._encoding()[0]
        qwen_calibration = fitted_calibration("qwen3", None)

        def raw_quicktok():  # its count(), the cheapest raw call (the estimate uses it too)
            for m in chat:
                qwen.count(m["content"])

        cases["raw quicktok qwen3"] = raw_quicktok
        cases["estimate qwen3, cold"] = lambda: Estimator().estimate(body, "qwen3", qwen_calibration)
    for run in cases.values():  # load tokenizers and token class tables before timing
        run()
    # Interleave the runs so machine noise hits every case alike, in a shuffled order each round: a case run
    # right after another that used the same tokenizer finds its tables in the CPU cache and looks faster.
    # CPU time beside wall time, since on the shared 2-core machine wall time also measures waiting for a core.
    wall = {name: [] for name in cases}
    cpu = {name: [] for name in cases}
    order = list(cases)
    shuffle = random.Random(7).shuffle
    for _ in range(args.repeat):
        shuffle(order)
        for name in order:
            run = cases[name]
            start, start_cpu = time.perf_counter(), time.thread_time()
            run()
            cpu[name].append((time.thread_time() - start_cpu) * 1000)
            wall[name].append((time.perf_counter() - start) * 1000)

    med = {k: statistics.median(v) for k, v in wall.items()}
    med_cpu = {k: statistics.median(v) for k, v in cpu.items()}
    raw = "raw tiktoken cl100k"

    def over(name, base=raw):
        return med[name] / med[base] - 1, med_cpu[name] / med_cpu[base] - 1

    print(f"chat: {len(chat)} messages, {total_tokens:,} cl100k tokens; {args.repeat} interleaved runs each\n")
    print(f"{'case':<30}{'median ms':>10}{'p99 ms':>9}{'cpu median ms':>15}")
    for name, values in wall.items():
        print(f"{name:<30}{med[name]:>10.2f}{percentile(values, 0.99):>9.2f}{med_cpu[name]:>15.2f}")
    overhead, overhead_cpu = over("estimate gpt-4, cold")
    every, every_cpu = over("estimate, 15 features, cold")
    turn_ratio = med["estimate gpt-4, turn n+1"] / med["estimate gpt-4, cold"]
    print(f"\ncold overhead over raw tiktoken (gpt-4):        {overhead:+.1%} wall, {overhead_cpu:+.1%} cpu"
          "  (goal ≤ +20%)")
    print(f"cold overhead over raw tiktoken (15 features):  {every:+.1%} wall, {every_cpu:+.1%} cpu")
    print(f"turn n+1 / cold:                                {turn_ratio:.1%}  (goal ≤ 10%)")
    result = {"messages": len(chat), "tokens": total_tokens, "repeat": args.repeat,
              "median_ms": med, "cpu_median_ms": med_cpu,
              "p99_ms": {k: percentile(v, 0.99) for k, v in wall.items()},
              "cold_overhead": overhead, "cold_overhead_cpu": overhead_cpu,
              "cold_overhead_every_feature": every, "cold_overhead_every_feature_cpu": every_cpu,
              "turn_over_cold": turn_ratio}
    if quicktok:
        qwen_over, qwen_over_cpu = over("estimate qwen3, cold", "raw quicktok qwen3")
        print(f"qwen3 estimate over raw quicktok qwen3:         {qwen_over:+.1%} wall, {qwen_over_cpu:+.1%} cpu "
              f"(quicktok, not tiktoken: {med['raw quicktok qwen3'] / med[raw]:.0%} of raw tiktoken's time)")
        result.update(qwen3_over_raw_quicktok=qwen_over, qwen3_over_raw_quicktok_cpu=qwen_over_cpu)
    else:
        print("quicktok-v1 is not installed: the qwen3 cases were not run")
    out = ROOT / "bench" / "results" / "estimate.json"
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(result, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
