"""Draining a queue our own excess left (after a capacity drop) on a path that loses nothing.

The estimator's cut to a share of the received rate drains a queue only slowly, and audio that
arrives a second late is worth less in a call than a short concealed gap. So while the queueing
delay is above `drain_above_ms` the budget is cut further, to the share of the recent received
rate that empties the queue within `drain_s` (never below MIN_SHARE of it), and when even the
smallest plan exceeds that, only every `send_every`-th packet leaves (at most `max_send_every`).

An episode starts when the path delivers under SENT_RATIO less than what we sent, and lasts while
the queue is above half the threshold. A path whose queue stays whatever we do (capacity under
even the smallest plan, or jitter that reads as queue) would make thinning throw audio away for
good: at most `max_drain_s` of any `window_s` drains. The transport chooses whether to drain at
all (`drain_above_ms`; None: never): over TCP a queue stays until the sender sends less, while
on an unreliable path a drop-tail bottleneck bounds it.
"""

from __future__ import annotations

import math
from collections import deque
from dataclasses import dataclass

from protocol.ratecontrol.delivery import MAX_REPORTS, RECENT_S

SENT_RATIO = 1.5  # an episode starts when what we sent is this many times what the path delivers
MIN_SHARE = 0.25  # the budget while draining: at least this share of the recent received rate
REPORT_S = 0.1  # how much draining a report counts for against `max_drain_s`
SENT_LAG_S = 0.2  # what we sent is looked up this much further back than RECENT_S (the packets in flight)


@dataclass(frozen=True)
class DrainSettings:
    drain_s: float = 0.3  # empty the queue within this
    max_send_every: int = 6
    max_drain_s: float = 1.5  # the most draining ...
    window_s: float = 10.0  # ... in any window this long


class Drainer:
    def __init__(self, drain_above_ms: float | None, settings: DrainSettings) -> None:
        self.settings = settings
        self.drain_above_s = math.inf if drain_above_ms is None else drain_above_ms / 1000
        self.active = False  # an episode is on
        self._drained: deque[float] = deque()  # times of the reports that drained
        # (time, planned wire bps) of recent plans, wire rates decreasing: the window's peak is the first.
        self._sent: deque[tuple[float, float]] = deque(maxlen=MAX_REPORTS)

    @property
    def peak_sent_bps(self) -> float:
        return self._sent[0][1]

    def on_report(self, now: float, planned_bps: float, queue_s: float, recent_bps: float | None) -> bool:
        """One report, with the wire rate of the plan in force as it was sent; returns whether
        to drain now."""
        # What we sent while these packets left: the peak over the last RECENT_S + SENT_LAG_S, as
        # a monotonic queue (a plan at or above an older one outlives it), O(1) a report.
        while self._sent and self._sent[-1][1] <= planned_bps:
            self._sent.pop()
        self._sent.append((now, planned_bps))
        while now - self._sent[0][0] > RECENT_S + SENT_LAG_S:
            self._sent.popleft()
        if recent_bps is None or queue_s < self.drain_above_s / 2:
            over = False
        elif self.active:
            over = True
        else:
            over = queue_s > self.drain_above_s and recent_bps < self.peak_sent_bps / SENT_RATIO
        while self._drained and now - self._drained[0] > self.settings.window_s:
            self._drained.popleft()
        self.active = over and len(self._drained) * REPORT_S < self.settings.max_drain_s
        if self.active:
            self._drained.append(now)
        return self.active

    def budget(self, estimate_bps: float, queue_s: float, recent_bps: float) -> float:
        """The estimate, cut to the share of the recent received rate that empties the queue in time."""
        share = max(MIN_SHARE, 1 - (queue_s - self.drain_above_s / 2) / self.settings.drain_s)
        return min(estimate_bps, share * recent_bps)

    def send_every(self, wire_bps: float, budget: float) -> int:
        """Every how many packets one leaves when even the smallest plan exceeds the budget."""
        return min(self.settings.max_send_every, math.ceil(wire_bps / budget))
