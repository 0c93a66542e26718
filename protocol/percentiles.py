"""Running statistics of per-frame values in constant memory: a mean, and percentiles from a
fixed-width histogram.

A call's statistics are read twice a second by the status line and once at its end; keeping
every frame's value (50 a second, for as long as the call lasts) and sorting them on each read
grew without bound. These keep a fixed number of counters and update in O(1) per value.
"""

from __future__ import annotations

import math

import numpy as np


class RunningMean:
    """The mean of every value added so far (a sum and a count)."""

    __slots__ = ("count", "total")

    def __init__(self) -> None:
        self.count = 0
        self.total = 0.0

    def add(self, value: float) -> None:
        self.count += 1
        self.total += value

    @property
    def mean(self) -> float | None:
        return self.total / self.count if self.count else None


class Histogram:
    """Percentiles of every value added since construction (a whole call, not a window), in
    bounded memory: `(hi - lo) / width` bins over [lo, hi), plus one bucket below and one above.

    Memory is the bin array, whatever the number of values. A percentile follows numpy's
    default (linear) definition over the values' ranks, with the values inside a bin taken as
    spread evenly across it: for values within [lo, hi) it is within `width` of
    `np.percentile` of the same values (the 0th and 100th are the exact minimum and maximum).
    Values outside are counted in the edge buckets, which span [min seen, lo) and [hi, max
    seen]: a percentile that falls there is only that coarse.
    """

    def __init__(self, lo: float, hi: float, width: float) -> None:
        if not (hi > lo and width > 0):
            raise ValueError("need hi > lo and width > 0")
        self.lo, self.hi, self.width = float(lo), float(hi), float(width)
        self._bins = math.ceil((self.hi - self.lo) / self.width)
        self._counts = np.zeros(self._bins + 2, np.int64)  # [below lo, bins..., at or above hi]
        self.count = 0
        self.min = math.inf
        self.max = -math.inf

    @property
    def nbytes(self) -> int:
        """Memory held by the counters (constant)."""
        return int(self._counts.nbytes)

    def add(self, value: float) -> None:
        """One value (O(1); the per-frame path). NaN is ignored."""
        if value != value:  # NaN
            return
        self._counts[self._index(value)] += 1
        self.count += 1
        if value < self.min:
            self.min = value
        if value > self.max:
            self.max = value

    def add_many(self, values: np.ndarray) -> None:
        values = np.asarray(values, np.float64).reshape(-1)
        values = values[~np.isnan(values)]
        if values.size == 0:
            return
        index = np.clip(np.floor((values - self.lo) / self.width), -1, self._bins).astype(np.int64) + 1
        self._counts += np.bincount(index, minlength=self._counts.size)
        self.count += int(values.size)
        self.min = min(self.min, float(values.min()))
        self.max = max(self.max, float(values.max()))

    def percentile(self, q: float) -> float | None:
        """The q-th percentile (0..100) of the values added, or None before the first."""
        if self.count == 0:
            return None
        if not 0.0 <= q <= 100.0:
            raise ValueError("q must be within 0..100")
        # numpy's linear definition: between the values of ranks floor(r) and ceil(r).
        rank = q / 100.0 * (self.count - 1)
        below = math.floor(rank)
        cumulative = np.cumsum(self._counts)
        low = self._value_of_rank(below, cumulative)
        if rank == below:
            return low
        return low + (rank - below) * (self._value_of_rank(below + 1, cumulative) - low)

    def _value_of_rank(self, k: int, cumulative: np.ndarray) -> float:
        """The k-th smallest value (0-based): exact at the ends; else its bucket's k values taken
        at the midpoints of equal slices of the bucket (so within a bin of the true one)."""
        if k == 0:
            return self.min
        if k == self.count - 1:
            return self.max
        b = int(np.searchsorted(cumulative, k, side="right"))
        before = int(cumulative[b - 1]) if b > 0 else 0
        start, end = self._bucket(b)
        value = start + (end - start) * (k - before + 0.5) / int(self._counts[b])
        return float(min(max(value, self.min), self.max))

    def _index(self, value: float) -> int:
        if value < self.lo:
            return 0
        if value >= self.hi:
            return self._bins + 1
        return min(int((value - self.lo) / self.width), self._bins - 1) + 1

    def _bucket(self, b: int) -> tuple[float, float]:
        if b == 0:
            return self.min, self.lo
        if b == self._bins + 1:
            return self.hi, self.max
        start = self.lo + (b - 1) * self.width
        return start, min(start + self.width, self.hi)
