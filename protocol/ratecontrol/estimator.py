"""The bandwidth estimate, from receiver feedback and our own send backlog (after GCC).

Three signals, each acted on at once when it says "less" and slowly when it says "more":
- loss: above LOSS_CUT_ABOVE the estimate is cut in proportion to it; below LOSS_GROW_BELOW it
  may grow; in between it holds (GCC's band: some loss is not congestion);
- queueing delay (how far recent frames arrived above the fastest path, which needs no clock
  sync): above `overuse_ms` the path is queueing, so the estimate drops under what the receiver
  actually got; below `underuse_ms` it may grow;
- the local send backlog: bytes stuck in our own socket mean the link is full.
Growth is multiplicative and happens only while the estimate is within `app_limit` times the
received rate: a sender that does not use its estimate learns nothing about the path.
"""

from __future__ import annotations

LOSS_GROW_BELOW = 0.02
LOSS_CUT_ABOVE = 0.10
BACKLOG_OVERUSE_BYTES = 2000  # unsent bytes in our socket that count as overuse
OVERUSE_SHARE = 0.85  # of the received rate, on overuse: under what the path delivers, so its queue drains


class BandwidthEstimator:
    def __init__(
        self,
        initial_bps: float,
        min_bps: float = 4_000.0,
        max_bps: float = 64_000.0,
        overuse_ms: float = 60.0,
        underuse_ms: float = 20.0,
        growth_per_s: float = 0.25,
        app_limit: float = 2.0,
    ) -> None:
        self.estimate = initial_bps
        self.app_limit = app_limit
        self.min_bps = min_bps
        self.max_bps = max_bps
        self.overuse_s = overuse_ms / 1000
        self.underuse_s = underuse_ms / 1000
        self.growth = growth_per_s
        self._last: float | None = None

    def on_feedback(self, now: float, loss_fraction: float, queue_delay_ms: float, received_bps: float | None, send_buffer_bytes: int = 0) -> float:
        """One receiver report (and our socket's backlog); returns the new estimate in bps."""
        dt = 0.1 if self._last is None else max(0.0, min(1.0, now - self._last))
        self._last = now
        queue_s = queue_delay_ms / 1000
        if loss_fraction > LOSS_CUT_ABOVE:
            self.estimate *= 1 - loss_fraction / 2
        if queue_s > self.overuse_s or send_buffer_bytes > BACKLOG_OVERUSE_BYTES:
            measured = received_bps if received_bps is not None else self.estimate
            self.estimate = min(self.estimate, OVERUSE_SHARE * measured)
        elif loss_fraction < LOSS_GROW_BELOW and queue_s < self.underuse_s and (received_bps is None or self.estimate < self.app_limit * received_bps):
            # Grow only while we use what we have: an estimate far above what arrives was never
            # tested by the path (GCC caps it at a multiple of the received rate; here it holds).
            self.estimate *= (1 + self.growth) ** dt
        self.clamp()
        return self.estimate

    def clamp(self) -> None:
        self.estimate = max(self.min_bps, min(self.max_bps, self.estimate))
