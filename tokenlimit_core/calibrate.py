"""Calibration: how a model family's prompt count follows from our features, fitted and checked.

Notebook 03 and the panel use this module:

    rows = load_conversations("calibration.jsonl")
    fit_rows, check_rows = split(rows)
    calibration = fit(samples(fit_rows, "qwen3"))
    error_table(errors(samples(check_rows, "qwen3"), calibration, family="qwen3"))
    apply(store, "qwen3*", calibration, actor="admin")   # the only way calibration changes

Live traffic only tells (estimate, actual, source) per request: `fit_from_ledger`
turns that into a scale, an overhead and the web UI's extra overhead.
"""
from __future__ import annotations

import hashlib
import json
import math
import pathlib
from dataclasses import dataclass
from datetime import datetime, timezone
from typing import Any, Iterable, Optional

import numpy as np
import pandas as pd

from .calibrate_live import apply, fit_from_ledger
from .calibrate_solve import relative_least_squares
from .estimate import FALLBACK_ENCODING, Estimator, Features, apply_calibration
from .policy import Calibration

# The model id whose encoding a family's samples are counted with (as the engine would count them).
FAMILY_MODELS = {"gpt-4o": "gpt-4o", "gpt-4": "gpt-4", "llama3": "llama3", "qwen3": "qwen3"}
# Feature -> Calibration coefficient; features missing here are not fitted.
COEFFICIENTS = {"tokens": "tokens", "han": "han", "kana_hangul": "kana_hangul", "cyrillic": "cyrillic",
                "messages": "per_message", "names": "per_name", "images": "per_image",
                "han_tokens": "han_tokens", "other_tokens": "other_tokens", "cjk_punct": "cjk_punct",
                "hangul": "hangul", "latin_ext": "latin_ext", "non_ascii": "non_ascii", "digits": "digits",
                "space_han": "space_han"}
# Counts that can only add tokens; script coefficients are corrections and may be negative.
NON_NEGATIVE = {"overhead", "tokens", "per_message", "per_name", "per_image"}
BASIC_FEATURES = ["tokens", "messages", "names", "images"]
BASIC_P90_ERROR = 1.0  # percent: below this on the fitted samples, the basic features suffice
MIXES = ("en", "zh", "code", "mixed")


@dataclass(frozen=True)
class Sample:
    """One conversation as calibration sees it: our features and the provider's actual counts."""

    id: str
    mix: str
    features: Features
    prompt: int  # actual prompt tokens
    completion: int  # actual completion tokens
    reply_tokens: int  # tokens of the reply text by our tokenizer
    method: str  # how our features were counted ("tiktoken:cl100k_base", ...)


def load_conversations(path: str | pathlib.Path) -> list[dict]:
    """Conversations from a JSON Lines file (id, mix, messages, completion, usage per family)."""
    path = pathlib.Path(path)
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as exc:
        raise ValueError(f"cannot read calibration file {path}: {exc.strerror or exc}") from exc
    rows = []
    for number, line in enumerate(text.splitlines(), start=1):
        if not line.strip():
            continue
        try:
            row = json.loads(line)
        except json.JSONDecodeError as exc:
            raise ValueError(f"{path}, line {number}: not valid JSON ({exc.msg})") from exc
        problem = _row_problem(row)
        if problem:
            raise ValueError(f"{path}, line {number}: {problem}")
        rows.append(row)
    if not rows:
        raise ValueError(f"calibration file {path} holds no conversations")
    return rows


def _row_problem(row: Any) -> Optional[str]:
    if not isinstance(row, dict):
        return "expected a JSON object"
    if not isinstance(row.get("id"), str) or not row["id"]:
        return "missing 'id'"
    if not isinstance(row.get("messages"), list) or not row["messages"]:
        return f"conversation {row['id']}: 'messages' must be a non-empty list"
    if not isinstance(row.get("usage"), dict):
        return f"conversation {row['id']}: 'usage' must map model families to token counts"
    return None


def split(conversations: list[dict], fit_share: float = 0.6) -> tuple[list[dict], list[dict]]:
    """(fit part, check part): a deterministic split by a hash of each conversation id."""
    if not 0 < fit_share < 1:
        raise ValueError(f"fit_share must be between 0 and 1 (got {fit_share})")
    fit_rows, check_rows = [], []
    for row in conversations:
        bucket = int(hashlib.sha256(row["id"].encode()).hexdigest(), 16) % 1000
        (fit_rows if bucket < fit_share * 1000 else check_rows).append(row)
    return fit_rows, check_rows


def samples(conversations: Iterable[dict], family: str, estimator: Optional[Estimator] = None, *,
            model: Optional[str] = None, encoding: Optional[str] = None) -> list[Sample]:
    """Samples of one family: features counted as the engine would for `model` (default: the family's).

    `encoding` counts with that encoding instead of the model's (e.g. "cl100k_base" for a twin calibration).
    """
    estimator = estimator or Estimator()
    model = model or FAMILY_MODELS.get(family, family)
    counting = Calibration(encoding=encoding)
    out = []
    for row in conversations:
        usage = row.get("usage", {}).get(family)
        if not isinstance(usage, dict):
            continue
        prompt, completion = usage.get("prompt_tokens"), usage.get("completion_tokens")
        if not isinstance(prompt, int) or prompt <= 0:
            raise ValueError(f"conversation {row['id']}: usage.{family}.prompt_tokens must be a positive integer")
        features, method = estimator.features({"messages": row["messages"]}, model, encoding=encoding)
        reply = row.get("completion")
        reply_tokens = estimator.reply_tokens(reply, model, counting) if isinstance(reply, str) else 0
        out.append(Sample(row["id"], str(row.get("mix", "")), features, prompt,
                          completion if isinstance(completion, int) else 0, reply_tokens, method))
    if not out:
        raise ValueError(f"no conversation has usage for model family {family!r}")
    return out


def fit(samples: list[Sample], *, previous: Optional[Calibration] = None, completion_quantile: float = 0.9,
        source: str = "", detail: Optional[bool] = None) -> Calibration:
    """A calibration fitted to samples: overhead and per-feature coefficients, completion scale and expectation.

    Features that never occur in the samples (say, no images) keep their
    `previous` coefficient (default: OpenAI's counting rule); so does `webui_overhead`.
    `detail=None` fits tokens, messages, names and images alone when they explain
    the counts (p90 error ≤ 1 %, as with a model's own tokenizer) and every feature
    otherwise; estimates for a calibration without detail features skip computing them.
    The encoding the samples were counted with is recorded in `encoding` and `fitted_on`.
    """
    if len(samples) < 2 * len(COEFFICIENTS):
        raise ValueError(f"need at least {2 * len(COEFFICIENTS)} samples to fit a calibration (got {len(samples)})")
    methods = sorted({s.method.split("+")[0] for s in samples})
    if len(methods) > 1:
        raise ValueError(f"samples were counted with different tokenizers ({', '.join(methods)}); fit each apart")
    previous = previous or Calibration()
    basic = _solve(samples, previous, BASIC_FEATURES)
    if detail is None:
        detail = _p90_error(samples, previous.model_copy(update=basic)) > BASIC_P90_ERROR
    update = _solve(samples, previous, list(COEFFICIENTS)) if detail else \
        {**basic, **{COEFFICIENTS[name]: 0.0 for name in COEFFICIENTS if name not in BASIC_FEATURES}}
    update.update(_completion(samples, previous, completion_quantile))
    mixes = ", ".join(f"{m} {n}" for m, n in sorted(_count(s.mix for s in samples).items()))
    update["encoding"] = methods[0].split(":")[-1]
    update["fitted_on"] = (f"{source + ': ' if source else ''}{len(samples)} conversations ({mixes}); "
                           f"{methods[0]}; {datetime.now(timezone.utc):%Y-%m-%d}")
    return previous.model_copy(update=update)


def _solve(samples: list[Sample], previous: Calibration, features: list[str]) -> dict[str, float]:
    names = [name for name in features if any(getattr(s.features, name) for s in samples)]
    targets = ["overhead"] + [COEFFICIENTS[name] for name in names]
    columns = np.array([[1.0] + [getattr(s.features, name) for name in names] for s in samples])
    actual = np.array([s.prompt for s in samples], dtype=float)
    prior = np.array([getattr(previous, t) for t in targets], dtype=float)
    solution = relative_least_squares(columns, actual, non_negative=[t in NON_NEGATIVE for t in targets],
                                      prior=prior)
    return {t: round(float(v), 6) for t, v in zip(targets, solution)}


def _p90_error(samples: list[Sample], calibration: Calibration) -> float:
    return float(np.quantile([abs(apply_calibration(s.features, calibration) - s.prompt) / s.prompt * 100
                              for s in samples], 0.9))


def fit_family(conversations: list[dict], family: str, estimator: Optional[Estimator] = None, *,
               previous: Optional[Calibration] = None, source: str = "") -> tuple[Calibration, Optional[Calibration]]:
    """(calibration, twin): fitted with the family's own encoding where installed, and its cl100k_base twin.

    The twin (None when the calibration is on cl100k_base already) is stored as
    "<pattern>@cl100k_base" by `apply` and serves where that encoding is missing.
    """
    estimator = estimator or Estimator()
    calibration = fit(samples(conversations, family, estimator), previous=previous, source=source)
    if calibration.encoding == FALLBACK_ENCODING:
        return calibration, None
    twin = fit(samples(conversations, family, estimator, encoding=FALLBACK_ENCODING), previous=previous,
               source=source)
    return calibration, twin


def _completion(samples: list[Sample], previous: Calibration, quantile: float) -> dict[str, Any]:
    pairs = [(s.reply_tokens, s.completion) for s in samples if s.reply_tokens > 0 and s.completion > 0]
    if not pairs:
        return {}
    ratio = np.array([r / c for r, c in pairs])
    scale = float(ratio.sum() / (ratio ** 2).sum())  # least squares on relative error: s·r ≈ c
    expected = int(math.ceil(float(np.quantile([c for _, c in pairs], quantile))))
    return {"completion_scale": round(scale, 6), "completion_expected": expected}


def _count(values: Iterable[str]) -> dict[str, int]:
    counts: dict[str, int] = {}
    for value in values:
        counts[value] = counts.get(value, 0) + 1
    return counts


def errors(samples: list[Sample], calibration: Calibration, family: Optional[str] = None) -> pd.DataFrame:
    """One row per sample: actual and predicted prompt tokens, signed and absolute percentage error."""
    predicted = [apply_calibration(s.features, calibration) for s in samples]
    frame = pd.DataFrame({"id": [s.id for s in samples], "mix": [s.mix for s in samples],
                          "actual": [s.prompt for s in samples], "predicted": predicted})
    frame.insert(0, "family", family or "")
    frame["error_pct"] = (frame["predicted"] - frame["actual"]) / frame["actual"] * 100
    frame["abs_error_pct"] = frame["error_pct"].abs()
    return frame


def error_table(error_rows: pd.DataFrame | list[pd.DataFrame]) -> pd.DataFrame:
    """Median and 90th-percentile absolute percentage error per family and mix (plus 'all' per family)."""
    frame = pd.concat(error_rows) if isinstance(error_rows, list) else error_rows
    every = frame.assign(mix="all")
    grouped = pd.concat([frame, every]).groupby(["family", "mix"], sort=False)["abs_error_pct"]
    table = grouped.agg(rows="size", median="median", p90=lambda v: float(np.quantile(v, 0.9))).reset_index()
    order = {m: i for i, m in enumerate(MIXES + ("all",))}
    table["_order"] = table["mix"].map(lambda m: order.get(m, len(order)))
    return table.sort_values(["family", "_order"], kind="stable").drop(columns="_order").reset_index(drop=True)


def coefficients(calibration: Calibration) -> dict[str, float]:
    """The prompt coefficients of a calibration that differ from zero (for display)."""
    names = ["overhead", "webui_overhead"] + list(COEFFICIENTS.values())
    return {name: getattr(calibration, name) for name in names if getattr(calibration, name)}


__all__ = ["COEFFICIENTS", "FAMILY_MODELS", "MIXES", "Sample", "apply", "coefficients", "error_table", "errors",
           "fit", "fit_family", "fit_from_ledger", "load_conversations", "samples", "split"]
