"""Calibration factors as an editable table (one row per model pattern) and back, naming bad cells."""
from __future__ import annotations

from typing import Optional

import pandas as pd
from pydantic import ValidationError

from tokenlimit_core import Calibration, Policy

from .policy_tables import CellError, _blank

FIELDS = list(Calibration.model_fields)


def calibration_frame(policy: Policy) -> pd.DataFrame:
    """One row per model pattern with every calibration factor."""
    rows = [{"model": model, **cal.model_dump()} for model, cal in policy.calibration.items()]
    frame = pd.DataFrame(rows, columns=["model", *FIELDS])
    for field, info in Calibration.model_fields.items():
        if info.annotation in (float,):
            frame[field] = frame[field].astype("float64")
    return frame


def frame_to_calibration(frame: pd.DataFrame) -> tuple[Optional[dict[str, Calibration]], list[CellError]]:
    """Parse the edited table; empty cells take the built-in defaults."""
    out: dict[str, Calibration] = {}
    errors: list[CellError] = []
    for row, record in enumerate(frame.to_dict("records"), start=1):
        if all(_blank(v) for v in record.values()):
            continue
        model = "" if _blank(record.get("model")) else str(record["model"]).strip()
        if not model:
            errors.append(CellError("calibration", row, "model", "required"))
            continue
        if model in out:
            errors.append(CellError("calibration", row, "model", "duplicate", model))
            continue
        values = {k: v for k, v in record.items() if k in FIELDS and not _blank(v)}
        try:
            out[model] = Calibration.model_validate(values)
        except ValidationError as exc:
            for error in exc.errors():
                column = str(error["loc"][0]) if error["loc"] else "model"
                errors.append(CellError("calibration", row, column, "invalid", error["msg"]))
    return (None, errors) if errors else (out, [])
