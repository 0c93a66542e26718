"""What the path delivered, from the receiver's cumulative feedback counters.

Loss and the received rate are measured over `window_s` of reports, not one report: a report
every 100 ms covers a handful of packets, too few for a rate. The rate that draining uses is
the recent one (RECENT_S): a queueing path delivers exactly its capacity, and the long window
would still hold the rate from before a drop.
"""

from __future__ import annotations

import bisect
from collections import deque
from dataclasses import dataclass

RECENT_S = 0.3  # the received rate that congestion reactions use is measured over this
# Reports kept for the loss and rate windows: a second of them at the sender's accepted rate
# (transmitter.sender.MIN_FEEDBACK_GAP_S); a count bound keeps a flood of reports from growing them.
MAX_REPORTS = 128


@dataclass(frozen=True)
class Counters:
    """One report's cumulative counters (the receiver's), at the sender's time `t`."""

    t: float
    highest_seq: int
    received: int
    received_bytes: int
    recovered: int


@dataclass(frozen=True)
class Delivery:
    """The received rates, wire overhead included; None where the reports cannot tell."""

    received_bps: float | None  # over the loss window: what the estimator follows
    recent_bps: float | None  # over RECENT_S: what a queueing path delivers now


class DeliveryWindow:
    def __init__(self, window_s: float, overhead_bytes: int) -> None:
        self.window_s = window_s
        self.overhead = overhead_bytes
        self.loss = 0.0  # packet loss over the window
        self.residual_loss = 0.0  # frames neither received nor recovered
        self.packets = 0  # the packets the loss is measured on (its noise: a few packets are a wide guess)
        self._reports: deque[Counters] = deque(maxlen=MAX_REPORTS)

    def on_report(self, report: Counters, frames_per_packet: float) -> Delivery:
        """`frames_per_packet`: the plan the packets were sent with (lost frames per lost packet)."""
        now = report.t
        self._reports.append(report)
        while len(self._reports) > 2 and now - self._reports[1].t >= self.window_s:
            self._reports.popleft()
        first = self._reports[0]
        expected, got = report.highest_seq - first.highest_seq, report.received - first.received
        if expected > 0:
            self.loss = max(0.0, min(1.0, 1 - got / expected))
            self.packets = expected
            lost_frames = (expected - got) * frames_per_packet
            residual = max(0, lost_frames - (report.recovered - first.recovered))
            self.residual_loss = min(1.0, residual / (expected * frames_per_packet))
        received_bps = None
        if now > first.t and got > 0:
            received_bps = 8 * (report.received_bytes - first.received_bytes + got * self.overhead) / (now - first.t)
        # The estimator keeps the long window: the short one falls with our own thinning while
        # draining, and would drag the estimate to the floor.
        recent_bps = received_bps
        # The oldest report within RECENT_S (times never decrease: a binary search).
        index = bisect.bisect_left(self._reports, -RECENT_S, key=lambda c: c.t - now)
        recent = self._reports[index] if index < len(self._reports) else self._reports[0]
        if now - recent.t >= RECENT_S / 2 and report.received > recent.received:
            recent_bps = 8 * (report.received_bytes - recent.received_bytes + (report.received - recent.received) * self.overhead) / (now - recent.t)
        return Delivery(received_bps, recent_bps)
