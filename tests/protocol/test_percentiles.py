"""protocol.percentiles: constant memory, and percentiles within a bin of numpy's."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from protocol.percentiles import Histogram, RunningMean


@pytest.mark.parametrize("q", [1, 5, 50, 95, 99])
def test_percentiles_of_a_known_distribution_are_within_a_bin_of_numpys(q: float) -> None:
    values = np.random.default_rng(1).normal(150.0, 25.0, 50_000)  # a mouth-to-ear delay in ms
    h = Histogram(0.0, 10_000.0, 1.0)
    h.add_many(values)
    assert abs(h.percentile(q) - np.percentile(values, q)) <= 1.0


def test_adding_one_value_at_a_time_is_the_same_as_adding_them_together() -> None:
    values = np.random.default_rng(2).gamma(2.0, 40.0, 2_000)
    one, many = Histogram(0.0, 500.0, 0.5), Histogram(0.0, 500.0, 0.5)
    for v in values:
        one.add(float(v))
    many.add_many(values)
    assert [one.percentile(q) for q in (0, 50, 95, 100)] == [many.percentile(q) for q in (0, 50, 95, 100)]


def test_memory_does_not_grow_with_the_number_of_values() -> None:
    h = Histogram(0.0, 10_000.0, 1.0)
    before = h.nbytes
    for _ in range(20):  # 2 million values: an 11-hour call at 50 frames a second
        h.add_many(np.random.default_rng(3).uniform(-50.0, 12_000.0, 100_000))
    assert h.nbytes == before <= 81_000 and h.count == 2_000_000


def test_values_outside_the_range_are_counted_at_the_edges_between_the_extremes() -> None:
    h = Histogram(0.0, 100.0, 1.0)
    h.add_many(np.array([-30.0, -20.0, 50.0, 400.0, 500.0]))
    assert h.percentile(0) == -30.0 and h.percentile(100) == 500.0
    assert -30.0 <= h.percentile(10) < 0.0 and 100.0 <= h.percentile(90) <= 500.0
    assert 50.0 <= h.percentile(50) < 51.0


def test_empty_and_nan() -> None:
    h = Histogram(0.0, 10.0, 1.0)
    h.add(float("nan"))
    assert h.percentile(50) is None and h.count == 0
    with pytest.raises(ValueError):
        Histogram(1.0, 1.0, 1.0)


@settings(max_examples=60, deadline=None)
@given(st.lists(st.floats(0.0, 999.0, allow_nan=False), min_size=1, max_size=300), st.floats(0.0, 100.0))
def test_any_percentile_is_within_a_bin_of_numpys(values: list[float], q: float) -> None:
    h = Histogram(0.0, 1000.0, 2.0)
    h.add_many(np.array(values))
    assert abs(h.percentile(q) - float(np.percentile(values, q))) <= 2.0 + 1e-9


def test_running_mean() -> None:
    m = RunningMean()
    assert m.mean is None
    for v in (1.0, 2.0, 6.0):
        m.add(v)
    assert m.mean == 3.0 and m.count == 3
