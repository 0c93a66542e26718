"""Sender-side bandwidth estimate and the RVQ layer count that fits it (sans-I/O).

BandwidthEstimator follows GCC's two signals plus the local send buffer:
- loss (from receiver feedback): under 2 % the estimate may grow, over 10 % it is cut to
  (1 - loss / 2) of itself, in between it holds;
- queueing delay (receiver feedback: how far recent frames arrived above the fastest path;
  no clock sync needed): over `overuse_ms` the link is queueing, so the estimate drops to
  85 % of what the receiver actually got; under `underuse_ms` it may grow;
- the local send buffer: bytes stuck in our own socket mean the link is full.
Growth is multiplicative (25 % a second) while probing, and only while the estimate is under
twice the received rate (an application-limited sender learns nothing about the path); a drop is
immediate.

LayerController turns the estimate into (layers, frames per packet) counting the wire, not
the payload: each packet pays `overhead_bytes` (IP/UDP/DTLS/SCTP for WebRTC ~90 B, TCP/IP +
websocket ~50 B) plus our 8-byte header and a byte per frame. When even one layer per 20 ms
packet does not fit, it packs 2 or 3 frames per packet (40-60 ms), and below what one layer at
3 costs, up to FLOOR_FRAMES_PER_PACKET (120 ms) with one layer. It goes down at once and up
only when the next level fits with 15 % to spare for `up_hold_s`, and by at most `max_up_layers`
(MAX_UP_BPS of stages) a step (a probe, not a leap). Fewer frames a packet is a leap (+48 % on the wire from 2 to
1 at 24 layers), taken half a frame at a time: first a trial of mixed packets (2, 1, 2, 1, ...:
1.5 frames a packet, +16 % over 2) for `up_hold_s`, which a path without the room queues on a
third as fast while the feedback comes back. A packing that the path refuses within PROBE_FAIL_S
(or a tighter one) is not tried again for a backoff that doubles with each refusal (10 to 60 s).
`protocol.packetizer.PacketSizer` cuts a fractional packing into whole packets.
"""

from __future__ import annotations

import bisect
import math
from collections import deque
from dataclasses import dataclass

from protocol.feedback import LEAP_QUEUE_MS
from protocol.packets import MAX_REDUNDANT

_RECENT_S = 0.3  # the received rate that congestion reactions use is measured over this
# Reports kept for the loss and rate windows: a second of them at the sender's accepted rate
# (transmitter.sender.MIN_FEEDBACK_GAP_S) is 100; a count bound keeps a flood from growing them.
_MAX_REPORTS = 128
# Under heavy loss the redundant copies reach this many frames back (160 ms): a burst of
# lost packets up to that long is bridged by the packets after it, if playout waits as deep
# (protocol/playout.py follows the copies it needed).
BURST_HORIZON_FRAMES = 8
PROBE_FAIL_S = 2.0  # a leap to fewer frames a packet undone within this was refused by the path
PROBE_ABORT_MS = LEAP_QUEUE_MS  # queueing delay that undoes such a leap at once (the receiver reports it early)
MIN_FPP_BACKOFF_S, MAX_FPP_BACKOFF_S = 10.0, 60.0
# Rates in bit/s of payload, turned into each model's stage count (`stages_for_bps`): a stage is
# 0.5 kbit/s with the ssc16k model and 0.2 with soundstream16k-lyra2, and these are what the
# stage counts mean to a listener.
ONE_FRAME_MIN_BPS = 2_000.0  # under heavy loss, one frame a packet if this much fits in 2/3 of the budget
REDUNDANT_BPS = 2_000.0  # each redundant copy's coarse stages, at most (fewer when the budget is short)
MAX_UP_BPS = 1_500.0  # the most a step up adds (a probe, not a leap)
# Below what one layer at three frames a packet costs (14.3 kbit/s on WebRTC's wire, 8.9 on the
# websocket's), up to six (120 ms, as Opus's longest packet): 7.7 and 5.1 kbit/s. Without it,
# the mobile trace's troughs held its 300 ms drop-tail queue full each way for 30 s, the RTT
# passed the 0.5 s that aioice allows an ICE consent check, and the data channel closed.
FLOOR_FRAMES_PER_PACKET = 6
START_BPS = 24_000.0  # the wire rate a call starts at before feedback says more fits
START_ONE_FRAME_BPS = 32_000.0  # ... unless its whole plan at one frame a packet costs at most this
HEADER_BYTES = 8  # protocol.packets header
OVERHEAD_WEBRTC = 90
OVERHEAD_WEBSOCKET = 50


@dataclass(frozen=True)
class RateDecision:
    layers: int
    frames_per_packet: float  # whole, or halfway during a leap's trial (1.5: packets of 2, 1, 2, 1, ...)
    wire_bps: float  # what this choice costs on the wire

    @property
    def trial(self) -> bool:
        return self.frames_per_packet != int(self.frames_per_packet)


def stages_for_bps(bps: float, bits_per_code: int, frame_s: float) -> int:
    """The stage count nearest to `bps` of payload (at least one)."""
    return max(1, round(bps * frame_s / bits_per_code))


def wire_bps(layers: int, frames_per_packet: float, bits_per_code: int, frame_s: float, overhead_bytes: int) -> float:
    payload = math.ceil(layers * bits_per_code / 8)
    packet = overhead_bytes + HEADER_BYTES + frames_per_packet * (1 + payload)
    return 8 * packet / (frames_per_packet * frame_s)


class BandwidthEstimator:
    def __init__(
        self, initial_bps: float, min_bps: float = 4_000.0, max_bps: float = 64_000.0,
        overuse_ms: float = 60.0, underuse_ms: float = 20.0, growth_per_s: float = 0.25, app_limit: float = 2.0,
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
        if loss_fraction > 0.10:
            self.estimate *= 1 - loss_fraction / 2
        if queue_s > self.overuse_s or send_buffer_bytes > 2000:
            measured = received_bps if received_bps is not None else self.estimate
            self.estimate = min(self.estimate, 0.85 * measured)
        elif loss_fraction < 0.02 and queue_s < self.underuse_s and (received_bps is None or self.estimate < self.app_limit * received_bps):
            # Grow only while we use what we have: an estimate far above what arrives was never
            # tested by the path (GCC caps it at 1.5x the received rate; here it just holds).
            self.estimate *= (1 + self.growth) ** dt
        self.estimate = max(self.min_bps, min(self.max_bps, self.estimate))
        return self.estimate


class LayerController:
    def __init__(
        self, max_layers: int, bits_per_code: int = 10, frame_s: float = 0.02, overhead_bytes: int = OVERHEAD_WEBRTC,
        max_frames_per_packet: int = 3, up_hold_s: float = 1.0, max_up_layers: int | None = None,
        floor_frames_per_packet: int = FLOOR_FRAMES_PER_PACKET, min_layers: int = 1,
    ) -> None:
        self.max_layers = max_layers
        # The fewest stages worth sending (the model's: `min_useful_stages` in its config): below
        # a budget for them the controller packs more frames a packet, never fewer stages.
        self.min_layers = max(1, min(min_layers, max_layers))
        self.bits = bits_per_code
        self.frame_s = frame_s
        self.overhead = overhead_bytes
        self.max_fpp = max_frames_per_packet
        self.floor_fpp = max(floor_frames_per_packet, max_frames_per_packet)
        self.up_hold_s = up_hold_s
        self.max_up_layers = max_up_layers or stages_for_bps(MAX_UP_BPS, bits_per_code, frame_s)
        self.current: RateDecision | None = None  # the first update takes the best fit
        self._up_since: float | None = None
        # Fewer frames a packet is a leap in wire rate (2 -> 1 at 24 layers: +48 %), not a
        # probe. A packing that the path refused within PROBE_FAIL_S (or any tighter one) is
        # not tried again for a backoff that doubles with each refusal (10 s .. 60 s) and
        # resets when a leap to it holds. An estimate a fifth above the one the refused
        # leap was made on lifts the block (the path changed: a capacity rise).
        self.fpp_backoff_s = 0.0
        self._fpp_probe_t: float | None = None
        self._fpp_probe_bps = 0.0  # the estimate the last leap was made on
        self._before_probe: RateDecision | None = None  # the plan the last leap left
        self._refused_bps = math.inf
        self._refused_fpp = 0  # packings of this many frames or fewer are refused for now
        self._fpp_blocked_until = -math.inf

    def cost(self, layers: int, fpp: float) -> float:
        return wire_bps(layers, fpp, self.bits, self.frame_s, self.overhead)

    def best_fit(self, budget_bps: float, max_fpp: int | None = None) -> RateDecision:
        """Most layers that fit; fewest frames per packet (least delay) among equals. When not
        even one layer fits at `max_frames_per_packet`, one layer at the fewest frames a packet
        up to `floor_frames_per_packet` that fits (or at that floor)."""
        top = min(self.max_fpp, max_fpp or self.max_fpp)
        least = self.min_layers
        best = RateDecision(least, top, self.cost(least, top))
        for fpp in range(1, top + 1):
            for layers in range(self.max_layers, least - 1, -1):
                if self.cost(layers, fpp) <= budget_bps:
                    if layers > best.layers or (layers == best.layers and fpp < best.frames_per_packet):
                        best = RateDecision(layers, fpp, self.cost(layers, fpp))
                    break
        if best.wire_bps > budget_bps and max_fpp is None:
            fpp = next((f for f in range(top + 1, self.floor_fpp + 1) if self.cost(least, f) <= budget_bps), self.floor_fpp)
            best = RateDecision(least, fpp, self.cost(least, fpp))
        return best

    def _at_packing(self, budget_bps: float, fpp: float) -> RateDecision:
        layers = next((n for n in range(self.max_layers, self.min_layers - 1, -1) if self.cost(n, fpp) <= budget_bps), self.min_layers)
        return RateDecision(layers, fpp, self.cost(layers, fpp))

    def on_trial(self, now: float, before: RateDecision, estimate_bps: float) -> None:
        """The current packing is a leap on trial from `before`, made on `estimate_bps` (a call
        that starts at one frame a packet above START_BPS): refused as any leap is."""
        self._before_probe, self._fpp_probe_t, self._fpp_probe_bps = before, now, estimate_bps

    def leap_refused(self, now: float, queue_ms: float) -> bool:
        """A leap to fewer frames a packet is on trial and the path queues: it is undone."""
        probing = self._fpp_probe_t is not None and now - self._fpp_probe_t <= PROBE_FAIL_S
        return probing and queue_ms > PROBE_ABORT_MS and self._before_probe is not None

    def update(self, now: float, estimate_bps: float, max_fpp: int | None = None, queue_ms: float = 0.0) -> RateDecision:
        fit = self.best_fit(estimate_bps, max_fpp)
        if self.leap_refused(now, queue_ms):
            assert self._before_probe is not None
            # The leap's first sign of queueing: back to the packing before it at once, not
            # after the estimator's overuse threshold (60 ms), which left TCP a queue to drain.
            fit = min(fit, self._before_probe, key=lambda d: d.wire_bps)
        if self._fpp_probe_t is not None and now - self._fpp_probe_t > PROBE_FAIL_S:
            if self.current is not None and self.current.frames_per_packet <= self._refused_fpp:
                self.fpp_backoff_s, self._refused_fpp = 0.0, 0  # a leap to the refused packing held
            self._fpp_probe_t = None
        if self.current is None:
            self.current = fit
        elif fit.wire_bps < self.current.wire_bps or fit.layers < self.current.layers or (max_fpp and self.current.frames_per_packet > max_fpp):
            if self._fpp_probe_t is not None and fit.frames_per_packet > self.current.frames_per_packet:
                self.fpp_backoff_s = min(MAX_FPP_BACKOFF_S, max(MIN_FPP_BACKOFF_S, 2 * self.fpp_backoff_s))
                self._refused_fpp = max(self._refused_fpp, self.current.frames_per_packet)
                self._refused_bps = self._fpp_probe_bps
                self._fpp_blocked_until, self._fpp_probe_t = now + self.fpp_backoff_s, None
            self.current, self._up_since = fit, None  # down at once
        elif fit.layers > self.current.layers or fit.frames_per_packet < self.current.frames_per_packet:
            roomy = self.best_fit(estimate_bps / 1.15, max_fpp)
            blocked = now < self._fpp_blocked_until and estimate_bps < 1.2 * self._refused_bps
            if roomy.frames_per_packet <= self._refused_fpp < self.current.frames_per_packet and blocked:
                roomy = self._at_packing(estimate_bps / 1.15, math.floor(self._refused_fpp) + 1)
            if roomy.layers > self.current.layers or roomy.frames_per_packet < self.current.frames_per_packet:
                self._up_since = now if self._up_since is None else self._up_since
                if now - self._up_since >= self.up_hold_s:
                    if roomy.frames_per_packet == self.current.frames_per_packet and roomy.layers > self.current.layers + self.max_up_layers:
                        # A probe, not a leap: behind a cap that the estimate overshoots (SCTP's
                        # SACKs share the path unseen), 1 -> 10 layers at once queued 130 ms and
                        # fell back to 1 layer every 4-5 s.
                        layers = self.current.layers + self.max_up_layers
                        roomy = RateDecision(layers, roomy.frames_per_packet, self.cost(layers, roomy.frames_per_packet))
                    if roomy.frames_per_packet < self.current.frames_per_packet:
                        # Half a frame a packet at a time (3, 2.5, 2, 1.5, 1): the trial of mixed
                        # packets costs a third of the leap, which a full path queues on a third as fast.
                        # Above max_frames_per_packet (a trough's floor): a frame at a time, one layer.
                        floor = self.current.frames_per_packet > self.max_fpp
                        step = max(roomy.frames_per_packet, self.current.frames_per_packet - (1.0 if floor else 0.5))
                        layers = self.min_layers if floor else roomy.layers
                        roomy = RateDecision(layers, step, self.cost(layers, step))
                        if not self.current.trial:  # a refusal goes back to the whole packing before the trial
                            self._before_probe = self.current
                        self._fpp_probe_t, self._fpp_probe_bps = now, estimate_bps
                    self.current, self._up_since = roomy, None
            else:
                self._up_since = None
        return self.current


@dataclass(frozen=True)
class SendPlan:
    """What the sender does with the next frames."""

    layers: int
    frames_per_packet: float  # whole, or halfway during a leap's trial (`protocol.packetizer.PacketSizer`)
    redundant_frames: int  # 0..MAX_REDUNDANT earlier frames carried again in each packet (coarse layers)
    redundant_layers: int
    wire_bps: float  # primary + redundancy, overhead included
    estimate_bps: float
    send_every: int = 1  # 2..6 while draining a queue that even the smallest plan would feed
    redundant_spacing: int = 1  # frames between the redundant copies (spread over a loss burst)

    @property
    def redundant_backs(self) -> tuple[int, ...]:
        """How many frames before the packet's first frame each redundant copy lies."""
        return tuple(1 + i * self.redundant_spacing for i in range(self.redundant_frames))


def burst_spacing(copies: int, horizon: int = BURST_HORIZON_FRAMES) -> int:
    """Frames between `copies` redundant copies so that they reach `horizon` frames back:
    dense (1) when there are enough copies, spread otherwise (3 copies: 1, 4, 7 back)."""
    return 1 if copies <= 1 else max(1, (horizon - 1) // (copies - 1))


class RatePolicy:
    """Feedback in, `SendPlan` out: the bandwidth estimate, the layer controller and loss
    protection together (sans-I/O; `now` is the sender's clock).

    Loss is measured over the last second from the feedback's cumulative counters (the
    100 ms reports hold 5 packets each: too few for a rate). The estimator is fed the loss the
    listener still hears, after redundancy recovered what it could: with protection on,
    random loss that redundancy repairs does not cut the rate (cutting would not help; a
    drop-tail bottleneck shows queueing delay before it drops, and that signal still cuts).

    Protection (as Opus LBRR / RED): above `protect_above` loss, each packet also carries
    the previous frame's coarsest `redundant_layers` layers; above `protect_two_above`
    (heavy, bursty loss), as many earlier frames as fit (up to MAX_REDUNDANT, at least 2
    layers each), spread to reach BURST_HORIZON_FRAMES back, and one frame a packet where
    ONE_FRAME_MIN_BPS of stages fit that way (a lost packet then takes 20 ms, not 40-60).
    Its bytes come out of the same estimate (at most a third of it): the primary layers
    shrink to make room. The loss that switches it is held: the peak of the 1-second
    windows, decaying with `protect_memory_s` (bursty loss leaves many clean windows between
    bad ones; protection that flickered off in them let the next burst through). While the
    path is queueing, or when even the smallest primary plan exceeds the estimate, there is
    none: that loss is congestion.

    Draining (after a capacity drop): the estimate's 85 % of the received rate drains a queue
    at 15 % of capacity, so the 0.4 s the sender needs to notice a 16 -> 4 kbit/s drop leaves
    1.2 s of queue that takes 8 s to go. While the queueing delay is above `drain_above_ms`
    the budget is cut further, to the share of the received rate that empties the queue
    within `drain_s`, never below a quarter of it; when even the smallest plan (one layer,
    three frames a packet) exceeds that, only every `send_every`-th packet leaves. Audio that
    would arrive a second late is worth less in a call than a short concealed gap. An episode
    starts when the path delivers under two thirds of what we sent, and at most `max_drain_s`
    of any `drain_window_s` drains. The transport chooses (`drain_above_ms`: 60 ms on the
    websocket, None on the WebRTC data channel; None here by default): with it at 60 ms the
    capacity-drop queue cleared in 1.8-2.6 s instead of 7-9 s, but on the mobile trace
    (WebRTC, whose smallest plan plus SCTP's SACKs nearly fills the trough capacity) it cut
    the audio played from 91 % to 48-83 % over a dozen runs of variants (docs/protocol.md).
    Our own unsent bytes count as queueing delay in any case, at the plan's rate.
    """

    def __init__(
        self, max_layers: int, bits_per_code: int = 10, frame_s: float = 0.02, overhead_bytes: int = OVERHEAD_WEBRTC,
        adapt: bool = True, protect: bool = True, initial_bps: float | None = None, max_frames_per_packet: int = 3,
        redundant_layers: int | None = None, protect_above: float = 0.02, protect_two_above: float = 0.08, window_s: float = 1.0,
        protect_memory_s: float = 5.0,
        drain_above_ms: float | None = None, drain_s: float = 0.3, max_send_every: int = 6, max_drain_s: float = 1.5,
        drain_window_s: float = 10.0, min_layers: int = 1,
    ) -> None:
        self.max_layers = max_layers
        self.bits = bits_per_code
        self.frame_s = frame_s
        self.overhead = overhead_bytes
        self.adapt = adapt
        self.protect = protect
        self.red_layers = min(redundant_layers or stages_for_bps(REDUNDANT_BPS, bits_per_code, frame_s), max_layers)
        self.min_layers_one_frame = min(stages_for_bps(ONE_FRAME_MIN_BPS, bits_per_code, frame_s), max_layers)
        self.protect_above = protect_above
        self.protect_two_above = protect_two_above
        self.window_s = window_s
        self.protect_memory_s = protect_memory_s
        self.drain_above_s = math.inf if drain_above_ms is None else drain_above_ms / 1000
        self.drain_s = drain_s
        self.max_send_every = max_send_every
        self.max_drain_s = max_drain_s
        self.drain_window_s = drain_window_s
        self._drained: deque[float] = deque()  # times of the reports that drained
        # (time, planned wire bps) of recent plans, wire rates decreasing: the window's peak is the first.
        self._sent: deque[tuple[float, float]] = deque(maxlen=_MAX_REPORTS)
        self.controller = LayerController(max_layers, bits_per_code, frame_s, overhead_bytes, max_frames_per_packet, min_layers=min_layers)
        top = self.controller.cost(max_layers, 1)
        # Start within START_BPS and probe up (25 % a second: the top in 3-4 s on a clean
        # path): starting at the top (52 kbit/s on WebRTC's wire) behind a 24 kbit/s cap lost
        # 65 % of the first 3 s to the drop-tail queue before the first reports came back.
        # A top within START_ONE_FRAME_BPS (6 kbit/s on the websocket: 29.6 kbit/s) starts there:
        # at START_BPS the call packs two frames a packet, which cost 20 ms of mouth-to-ear delay
        # until the probe reached one frame a packet 4 s later (a 7 s call on loopback: p50 77 ms
        # instead of 45 ms). That start is a leap on trial from START_BPS's packing: the first
        # queueing the receiver reports within PROBE_FAIL_S goes back to it at once. A path under
        # ~24 kbit/s still queues more at the start than it did at START_BPS (docs/protocol.md).
        # The ceiling leaves room for the densest protection on top of the best primary plan.
        ceiling = top + (self.redundancy_bps(MAX_REDUNDANT, 1, self.red_layers) if protect else 0.0)
        start = top if START_BPS < top <= START_ONE_FRAME_BPS and initial_bps is None and adapt else min(top, START_BPS)
        self.estimator = BandwidthEstimator(initial_bps or start, max_bps=max(1.2 * ceiling, 8_000.0))
        self._start_trial = self.controller.best_fit(START_BPS) if start > START_BPS else None
        self.loss = 0.0  # packet loss over the window
        self.protect_loss = 0.0  # the loss protection follows: window peaks, decaying
        self._protect_loss_t: float | None = None
        self.residual_loss = 0.0  # frames neither received nor recovered
        self._history: deque[tuple[float, int, int, int, int]] = deque(maxlen=_MAX_REPORTS)  # (t, highest, received, bytes, recovered)
        self.plan = self._plan(self.estimator.estimate if adapt else top, self._fixed() if not adapt else None)

    def _fixed(self) -> RateDecision:
        return RateDecision(self.max_layers, 1, self.controller.cost(self.max_layers, 1))

    def redundancy_bps(self, frames: int, fpp: float, layers: int | None = None) -> float:
        if frames == 0:
            return 0.0
        per_frame = 2 + math.ceil((layers or self.red_layers) * self.bits / 8)
        return 8 * (1 + frames * per_frame) / (fpp * self.frame_s)

    @property
    def heavy_loss(self) -> bool:
        return self.protect and self.protect_loss > self.protect_two_above

    def _hold_loss(self, now: float) -> None:
        decay = 0.0 if self._protect_loss_t is None else math.exp(-(now - self._protect_loss_t) / self.protect_memory_s)
        self.protect_loss = max(self.loss, self.protect_loss * decay)
        self._protect_loss_t = now

    def _protection(self, budget: float, fpp: float) -> tuple[int, int]:
        """(frames, layers) of redundancy wanted at the current loss, within a third of the budget:
        under heavy loss as many copies as fit (coverage of a burst first, then their layers)."""
        if not self.protect:
            return 0, 0
        frames = MAX_REDUNDANT if self.heavy_loss else 1 if self.protect_loss > self.protect_above else 0
        while frames:
            fewest = 1 if frames <= 3 else min(2, self.red_layers)
            for layers in range(self.red_layers, fewest - 1, -1):
                if self.redundancy_bps(frames, fpp, layers) <= budget / 3:
                    return frames, layers
            frames -= 1
        return 0, 0

    def _plan(self, budget: float, fixed: RateDecision | None = None) -> SendPlan:
        decision = fixed
        max_fpp = None
        if decision is None:
            # Under heavy (bursty) loss, one frame a packet where it fits: a burst of lost
            # packets then takes half or a third of the audio that 40-60 ms packets lose.
            if self.heavy_loss and self.controller.cost(self.min_layers_one_frame, 1) <= budget * 2 / 3:
                max_fpp = 1
            # The controller sees the budget left after redundancy (at the packing it would choose).
            fpp = self.controller.best_fit(budget, max_fpp).frames_per_packet
            frames, layers = self._protection(budget, fpp)
            decision = self.controller.update(
                self._now, budget - self.redundancy_bps(frames, fpp, layers), max_fpp, self._queue_ms,
            )
        frames, layers = self._protection(budget if fixed is None else float("inf"), decision.frames_per_packet)
        red = self.redundancy_bps(frames, decision.frames_per_packet, layers)
        if fixed is None and (self._queueing or decision.wire_bps + red > budget):
            frames, layers, red = 0, 0, 0.0  # congestion loss: redundancy would only add to it
        every = 1
        if fixed is None and self._draining and decision.wire_bps > budget > 0:
            every = min(self.max_send_every, math.ceil(decision.wire_bps / budget))
        # Under heavy loss the copies reach BURST_HORIZON_FRAMES back: dense when there are
        # enough of them; spread (3 copies: 1, 4, 7 back) when not, so that a burst of up to
        # seven lost frames leaves holes of two, which concealment bridges, not one long gap.
        spacing = burst_spacing(frames) if frames > 1 and self.heavy_loss else 1
        return SendPlan(
            decision.layers, decision.frames_per_packet, frames, layers, (decision.wire_bps + red) / every, self.estimator.estimate, every,
            spacing,
        )

    _now = 0.0
    _queue_ms = 0.0
    _queueing = False
    _draining = False

    def on_feedback(
        self, now: float, highest_seq: int, received: int, received_bytes: int, recovered: int, queue_delay_ms: float,
        send_buffer_bytes: int = 0,
    ) -> SendPlan:
        self._now = now
        if self._start_trial is not None:  # the first report: the start's trial runs from now
            self.controller.on_trial(now, self._start_trial, self.estimator.estimate)
            self._start_trial = None
        self._history.append((now, highest_seq, received, received_bytes, recovered))
        while len(self._history) > 2 and now - self._history[1][0] >= self.window_s:
            self._history.popleft()
        t0, h0, r0, b0, rec0 = self._history[0]
        expected, got = highest_seq - h0, received - r0
        received_bps = None
        if expected > 0:
            self.loss = max(0.0, min(1.0, 1 - got / expected))
            lost_frames = (expected - got) * self.plan.frames_per_packet
            residual = max(0, lost_frames - (recovered - rec0))
            self.residual_loss = min(1.0, residual / (expected * self.plan.frames_per_packet))
        self._hold_loss(now)
        if now > t0 and got > 0:
            received_bps = 8 * (received_bytes - b0 + got * self.overhead) / (now - t0)
        # What the path delivers now, for draining: over the last reports only, since a
        # queueing path delivers exactly its capacity, and the second-long window would still
        # hold the rate from before a drop. (The estimator keeps the long window: the short
        # one falls with our own thinning and would drag the estimate to the floor.)
        recent_bps = received_bps
        # The oldest report within _RECENT_S (times never decrease: a binary search).
        first = bisect.bisect_left(self._history, -_RECENT_S, key=lambda h: h[0] - now)
        recent = self._history[first] if first < len(self._history) else self._history[0]
        if now - recent[0] >= _RECENT_S / 2 and received > recent[2]:
            recent_bps = 8 * (received_bytes - recent[3] + (received - recent[2]) * self.overhead) / (now - recent[0])
        # Our own backlog is queueing delay as well (at the rate we send).
        backlog_ms = 1000 * 8 * send_buffer_bytes / max(self.plan.wire_bps, 1.0)
        queue_delay_ms = max(queue_delay_ms, backlog_ms)
        self._queueing = queue_delay_ms > 1000 * self.estimator.overuse_s
        self._queue_ms = queue_delay_ms
        heard_loss = self.residual_loss if self.protect else self.loss
        if self.protect and not self._queueing and queue_delay_ms < 1000 * self.estimator.underuse_s:
            # Loss on a path that does not queue is not congestion: hold the rate (GCC's
            # 2-10 % band) instead of cutting it. Cutting would not repair that loss, and at the
            # floor there is no room for redundancy: the rate would stay there for good.
            heard_loss = min(heard_loss, 0.10)
        if not self.adapt:
            self.plan = self._plan(0.0, self._fixed())
            return self.plan
        if self.plan.send_every > 1:
            # We thinned our own packets: the received rate shows that, not the path. Hold.
            estimate = self.estimator.estimate
        else:
            estimate = self.estimator.on_feedback(now, heard_loss, queue_delay_ms, received_bps)
        queue_s = queue_delay_ms / 1000
        # Draining is for a queue our own excess left (a capacity drop): an episode starts
        # when the path delivers under two thirds of what we send, and lasts while the queue
        # is above half the threshold. A path whose queue stays (capacity under even the
        # smallest plan, or jitter that reads as queue) keeps it however long we thin, and
        # thinning for good throws audio away for good: at most `max_drain_s` of draining in
        # any `drain_window_s`.
        # What we sent while these packets left: the peak over the last _RECENT_S + 0.2 s, as a
        # monotonic queue (a plan at or above an older one outlives it), O(1) a report.
        planned = self.plan.wire_bps * self.plan.send_every
        while self._sent and self._sent[-1][1] <= planned:
            self._sent.pop()
        self._sent.append((now, planned))
        while now - self._sent[0][0] > _RECENT_S + 0.2:
            self._sent.popleft()
        sent_bps = self._sent[0][1]
        if recent_bps is None or queue_s < self.drain_above_s / 2:
            over = False
        elif self._draining:
            over = True
        else:
            over = queue_s > self.drain_above_s and recent_bps < sent_bps / 1.5
        while self._drained and now - self._drained[0] > self.drain_window_s:
            self._drained.popleft()
        self._draining = over and len(self._drained) * 0.1 < self.max_drain_s
        if self._draining:
            self._drained.append(now)
        if self._draining:
            # A queueing path delivers its capacity, however little we add to its queue: that,
            # not the second-long window that still holds the rate from before the drop, is
            # what the estimate may be. Without this, the estimate held through the drain came
            # back at 5x the capacity and refilled the queue within a second.
            self.estimator.estimate = max(self.estimator.min_bps, min(self.estimator.estimate, 0.85 * recent_bps))
            estimate = self.estimator.estimate
            share = max(0.25, 1 - (queue_s - self.drain_above_s / 2) / self.drain_s)
            estimate = min(estimate, share * recent_bps)
        self.plan = self._plan(estimate)
        return self.plan
