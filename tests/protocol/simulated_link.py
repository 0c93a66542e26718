"""A simulated bottleneck for the rate-control tests: capacity, a drop-tail queue (or none)."""

from __future__ import annotations

STEP = 0.1  # feedback interval


class Bottleneck:
    """A link of capacity C (bps) with a drop-tail queue of at most 200 ms."""

    def __init__(self, capacity: float, limit_s: float | None = 0.2) -> None:
        self.capacity = capacity
        self.limit_s = limit_s  # None: nothing is dropped (TCP hands every byte over, late)
        self.queue_bits = 0.0

    def carry(self, rate: float) -> tuple[float, float, float]:
        """Send at `rate` for one step; returns (loss fraction, queue delay ms, received bps)."""
        offered = rate * STEP
        self.queue_bits += offered
        served = min(self.queue_bits, self.capacity * STEP)
        self.queue_bits -= served
        limit = float("inf") if self.limit_s is None else self.limit_s * self.capacity
        dropped = max(0.0, self.queue_bits - limit)
        self.queue_bits -= dropped
        return dropped / offered if offered else 0.0, 1000 * self.queue_bits / self.capacity, served / STEP
