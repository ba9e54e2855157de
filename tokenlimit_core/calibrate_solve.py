"""Least squares on relative error, with sign constraints and a pull towards earlier values.

Token counts span three orders of magnitude (a 12-token greeting, a 15,000-token
paste); fitting absolute errors would let the long requests decide everything,
so every row is weighted by 1/actual (squared residual weight 1/actual²).
"""
from __future__ import annotations

from typing import Optional, Sequence

import numpy as np


def relative_least_squares(columns: np.ndarray, actual: np.ndarray, *, non_negative: Sequence[bool],
                           prior: Optional[np.ndarray] = None, ridge: float = 1e-4,
                           weights: Optional[np.ndarray] = None) -> np.ndarray:
    """Coefficients x minimising Σ(w·(columns·x − actual)/actual)², with x[j] ≥ 0 where non_negative[j].

    `prior` (default zeros) is where a tiny ridge term pulls coefficients that the
    data cannot pin down (collinear or nearly constant columns); `weights` (default 1)
    weigh rows.
    """
    columns = np.asarray(columns, dtype=float)
    actual = np.asarray(actual, dtype=float)
    if columns.ndim != 2 or columns.shape[0] != actual.shape[0]:
        raise ValueError(f"need one row of features per actual count (got {columns.shape} and {actual.shape})")
    if np.any(actual <= 0):
        raise ValueError("actual counts must be positive to weigh relative errors")
    n_cols = columns.shape[1]
    prior = np.zeros(n_cols) if prior is None else np.asarray(prior, dtype=float)
    row_weights = np.ones_like(actual) if weights is None else np.asarray(weights, dtype=float)
    weighted = columns * (row_weights / actual)[:, None]
    target = row_weights.copy()
    scale = np.linalg.norm(weighted, axis=0)
    scale[scale == 0] = 1.0
    free = list(range(n_cols))
    fixed: dict[int, float] = {}
    while True:
        x = prior.copy()
        for j, value in fixed.items():
            x[j] = value
        rest = target - weighted[:, list(fixed)] @ np.array(list(fixed.values())) if fixed else target
        a = weighted[:, free]
        penalty = np.diag(ridge * scale[free])
        stacked = np.vstack([a, penalty])
        rhs = np.concatenate([rest, penalty @ prior[free]])
        solution, *_ = np.linalg.lstsq(stacked, rhs, rcond=None)
        x[free] = solution
        negative = [j for j in free if non_negative[j] and x[j] < 0]
        if not negative:
            return x
        worst = min(negative, key=lambda j: x[j])
        free.remove(worst)
        fixed[worst] = 0.0


def line_fit(estimate: np.ndarray, actual: np.ndarray) -> tuple[float, float]:
    """(a, b) with actual ≈ a + b·estimate, relative least squares, b ≥ 0."""
    estimate = np.asarray(estimate, dtype=float)
    columns = np.column_stack([np.ones_like(estimate), estimate])
    a, b = relative_least_squares(columns, np.asarray(actual, dtype=float), non_negative=[False, True], ridge=0.0)
    return float(a), float(b)
