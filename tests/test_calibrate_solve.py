"""Relative least squares: exact recovery, sign constraints, the pull towards a prior, row weights."""
from __future__ import annotations

import numpy as np
import pytest

from tokenlimit_core.calibrate_solve import line_fit, relative_least_squares


def test_recovers_exact_coefficients():
    rng = np.random.default_rng(7)
    columns = np.column_stack([np.ones(50), rng.integers(10, 5000, 50), rng.integers(1, 30, 50)])
    truth = np.array([3.0, 0.8, 4.0])
    x = relative_least_squares(columns, columns @ truth, non_negative=[True, True, True], ridge=0)
    assert x == pytest.approx(truth, rel=1e-9)


def test_relative_weighting_lets_small_requests_count():
    # Two regimes: short requests have +20 overhead, long ones none. Absolute errors would follow
    # the long ones; relative errors keep the short ones within a few percent.
    columns = np.array([[1, 10], [1, 12], [1, 15], [1, 10_000], [1, 12_000]], dtype=float)
    actual = np.array([30, 32, 35, 10_000, 12_000], dtype=float)
    x = relative_least_squares(columns, actual, non_negative=[False, True], ridge=0)
    relative = np.abs(columns @ x - actual) / actual
    assert relative.max() < 0.05


def test_non_negative_coefficients_are_clamped_and_the_rest_refitted():
    columns = np.column_stack([np.ones(20), np.arange(1, 21) * 100.0])
    actual = columns[:, 1] * 1.5 - 20  # the best intercept would be negative
    x = relative_least_squares(columns, actual, non_negative=[True, True], ridge=0)
    assert x[0] == 0 and x[1] > 0
    free = relative_least_squares(columns, actual, non_negative=[False, True], ridge=0)
    assert free[0] == pytest.approx(-20, abs=1e-6)


def test_a_feature_the_data_cannot_pin_keeps_its_prior():
    columns = np.column_stack([np.arange(1, 31) * 10.0, np.zeros(30)])  # second column never occurs
    x = relative_least_squares(columns, columns[:, 0] * 2, non_negative=[True, True], prior=np.array([1.0, 85.0]))
    assert x[0] == pytest.approx(2, rel=1e-3) and x[1] == pytest.approx(85)


def test_row_weights_shift_the_fit():
    columns = np.column_stack([np.ones(4), [100.0, 100, 100, 100]])
    actual = np.array([100.0, 100, 120, 120])
    heavy_low = relative_least_squares(columns[:, 1:], actual, non_negative=[True], ridge=0,
                                       weights=np.array([10, 10, 1, 1.0]))
    assert heavy_low[0] < 1.05


def test_bad_shapes_and_counts_are_refused():
    with pytest.raises(ValueError, match="one row of features per actual count"):
        relative_least_squares(np.ones((3, 2)), np.ones(4), non_negative=[True, True])
    with pytest.raises(ValueError, match="positive"):
        relative_least_squares(np.ones((2, 1)), np.array([1.0, 0.0]), non_negative=[True])


def test_line_fit():
    estimate = np.linspace(100, 5000, 40)
    a, b = line_fit(estimate, 2500 + 1.05 * estimate)
    assert a == pytest.approx(2500, rel=1e-6) and b == pytest.approx(1.05, rel=1e-6)
