"""The bandwidth estimate, from receiver feedback and our own send backlog (after GCC).

Three signals, each acted on at once when it says "less" and slowly when it says "more":
- loss, measured against the path's inherent loss (what it loses whatever we send: random loss
  on a radio link, which cutting does not reduce). Loss clearly above that (LOSS_CUT_ABOVE and
  half the inherent loss again, or LOSS_NOISE_SDS times the binomial noise of a window of so
  few packets) cuts the estimate to what arrived, at most once a loss window: the window's loss
  was measured at the rate before the cut, and cutting again on it cut the same loss ten times
  a second. Loss within LOSS_GROW_BELOW of the inherent loss lets it grow; in between it holds.
  The inherent loss is learnt as GCC's newer loss-based estimator learns it, from loss that
  persists at a lower rate: the window after a loss cut, if it shows no more loss than the one
  that cut (within its noise), was not ours. A policer's loss goes away under its capacity, so
  it is never learnt and keeps cutting. It is never more than the average loss (over
  INHERENT_MEMORY_S), so it follows the path when its loss goes away;
- queueing delay (how far recent frames arrived above the fastest path, which needs no clock
  sync): above `overuse_ms` the path is queueing, so the estimate drops under what the receiver
  actually got; below `underuse_ms` it may grow;
- the local send backlog: bytes stuck in our own socket mean the link is full.
Growth is multiplicative and happens only while the estimate is within `app_limit` times the
received rate: a sender that does not use its estimate learns nothing about the path.
"""

from __future__ import annotations

import math

LOSS_GROW_BELOW = 0.02  # loss above the inherent under which the estimate may grow
LOSS_CUT_ABOVE = 0.05  # ... over which (and over half the inherent loss again) it is cut
LOSS_CUT_SHARE = 0.95  # of the rate that arrived without the inherent loss, on a loss cut
LOSS_NOISE_SDS = 4.0  # ... or over this many standard deviations of a window's binomial noise
MAX_INHERENT_LOSS = 0.25  # loss above this is never taken for the path's own
INHERENT_MEMORY_S = 10.0  # time constant of the average loss, the inherent loss's bound
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
        loss_window_s: float = 1.0,
    ) -> None:
        self.estimate = initial_bps
        self.app_limit = app_limit
        self.min_bps = min_bps
        self.max_bps = max_bps
        self.overuse_s = overuse_ms / 1000
        self.underuse_s = underuse_ms / 1000
        self.growth = growth_per_s
        self.loss_window_s = loss_window_s  # what the loss fed in is measured over
        self._persisting = 0.0  # the most loss that persisted after a loss cut
        self._mean_loss = (0.0, 0.0)  # the loss's average: (weighted sum, weight), no prior
        self._last: float | None = None
        self._loss_cut: tuple[float, float, int] | None = None  # (when, the loss that cut, its packets) until a window at the new rate

    def on_feedback(
        self, now: float, loss_fraction: float, queue_delay_ms: float, received_bps: float | None, send_buffer_bytes: int = 0, packets: int = 0
    ) -> float:
        """One receiver report (and our socket's backlog; `packets`: what the loss was measured
        on, 0 if unknown); returns the new estimate in bps."""
        dt = 0.1 if self._last is None else max(0.0, min(1.0, now - self._last))
        self._last = now
        queue_s = queue_delay_ms / 1000
        overuse = queue_s > self.overuse_s or send_buffer_bytes > BACKLOG_OVERUSE_BYTES
        self._learn_inherent_loss(now, dt, loss_fraction, overuse)
        if self._loss_cut is None and loss_fraction > self.loss_cut_above(packets):
            self._cut_on_loss(now, loss_fraction, received_bps, packets)
        if overuse:
            measured = received_bps if received_bps is not None else self.estimate
            self.estimate = min(self.estimate, OVERUSE_SHARE * measured)
        elif (
            self._loss_cut is None
            and loss_fraction < self.inherent_loss + LOSS_GROW_BELOW
            and queue_s < self.underuse_s
            and (received_bps is None or self.estimate < self.app_limit * received_bps)
        ):
            # Grow only while we use what we have: an estimate far above what arrives was never
            # tested by the path (GCC caps it at a multiple of the received rate; here it holds).
            self.estimate *= (1 + self.growth) ** dt
        self.clamp()
        return self.estimate

    @property
    def inherent_loss(self) -> float:
        """The path's own loss, which cutting does not reduce."""
        total, weight = self._mean_loss
        return min(self._persisting, total / weight if weight else 0.0)

    def loss_cut_above(self, packets: int = 0) -> float:
        """The loss that cuts: clearly above the inherent loss, whose windows scatter more the
        more of it there is and the fewer packets they hold (10 % of 50 packets: +/- 4 %; of 8
        packets, at six frames a packet: +/- 11 %)."""
        p = self.inherent_loss
        q = max(p, LOSS_CUT_ABOVE)  # one lost packet of a few is no evidence, even on a clean path
        noise = LOSS_NOISE_SDS * math.sqrt(q * (1 - q) / packets) if packets else 0.0
        return p + max(LOSS_CUT_ABOVE + p / 2, noise)

    def _cut_on_loss(self, now: float, loss: float, received_bps: float | None, packets: int) -> None:
        if received_bps is not None:
            # What arrived is what a policer lets through: under it, its loss goes away.
            self.estimate = min(self.estimate, LOSS_CUT_SHARE * received_bps / (1 - self.inherent_loss))
        else:
            self.estimate *= 1 - (loss - self.inherent_loss) / 2
        self._loss_cut = (now, loss, packets)

    def _learn_inherent_loss(self, now: float, dt: float, loss: float, overuse: bool) -> None:
        if overuse:
            self._loss_cut = None  # a queue's loss is congestion, whatever the rate: nothing to learn
            return
        total, weight = self._mean_loss
        keep = math.exp(-dt / INHERENT_MEMORY_S)
        self._mean_loss = (total * keep + (1 - keep) * loss, weight * keep + (1 - keep))
        if self._loss_cut is not None and now - self._loss_cut[0] >= self.loss_window_s:
            _, cut_loss, packets = self._loss_cut
            self._loss_cut = None
            # The loss a window at the lower rate still shows was not ours to cut; unless it
            # grew beyond the noise of the window that cut (that window was half before a
            # policer's drop, and the cut fell short of it).
            if loss <= cut_loss + (math.sqrt(cut_loss * (1 - cut_loss) / packets) if packets else 0.0):
                self._persisting = max(self._persisting, min(loss, MAX_INHERENT_LOSS))

    def clamp(self) -> None:
        self.estimate = max(self.min_bps, min(self.max_bps, self.estimate))
