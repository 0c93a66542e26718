"""Feedback in, `SendPlan` out: the estimate, the layer controller, protection and draining
together (sans-I/O; `now` is the sender's clock).

The estimator is fed the loss the listener still hears, after redundancy recovered what it
could: random loss that redundancy repairs does not cut the rate (cutting would not repair it),
while a drop-tail bottleneck shows queueing delay before it drops, and that signal still cuts.
Loss on a path that does not queue holds the rate instead of cutting it, or a protected call
would sink to the floor, where there is no room for redundancy, and stay there; without
protection the estimator weighs all loss against the path's inherent loss, which it learns.
While the path queues, or when even the smallest primary plan exceeds the estimate, there is
no redundancy: that loss is congestion. Our own unsent bytes count as queueing delay, at the
plan's rate.

A call starts within START_BPS and probes up: starting at the top behind a lower cap loses
the first seconds to the bottleneck's queue before the first reports come back. A top within
START_ONE_FRAME_BPS starts there instead (packing two frames a packet costs mouth-to-ear
delay until the probe gets there), as a leap on trial from START_BPS's packing, which the first
queueing report undoes. The estimator's ceiling leaves room for the densest protection on top
of the best primary plan. docs/protocol.md has the measurements behind each rule.
"""

from __future__ import annotations

from protocol.packets import MAX_REDUNDANT, OVERHEAD_WEBRTC
from protocol.ratecontrol.delivery import Counters, DeliveryWindow
from protocol.ratecontrol.draining import Drainer, DrainSettings
from protocol.ratecontrol.estimator import OVERUSE_SHARE, BandwidthEstimator
from protocol.ratecontrol.layers import LayerController, RateDecision
from protocol.ratecontrol.plan import PathReport, SendPlan, burst_spacing
from protocol.ratecontrol.protection import Protection, ProtectionSettings

START_BPS = 24_000.0  # the wire rate a call starts at before feedback says more fits
START_ONE_FRAME_BPS = 32_000.0  # ... unless its whole plan at one frame a packet costs at most this
MIN_CEILING_BPS = 8_000.0  # the estimator's ceiling, whatever the model's top


class RatePolicy:
    """`adapt` False: the top plan, always (protection may still follow the loss). `protect`
    False: no redundancy, and the estimator hears all loss. `drain_above_ms`: the
    transport's choice (`protocol.ratecontrol.draining`); None: never drain."""

    def __init__(
        self,
        max_layers: int,
        bits_per_code: int = 10,
        frame_s: float = 0.02,
        overhead_bytes: int = OVERHEAD_WEBRTC,
        *,
        adapt: bool = True,
        protect: bool = True,
        initial_bps: float | None = None,
        max_frames_per_packet: int = 3,
        min_layers: int = 1,
        window_s: float = 1.0,
        drain_above_ms: float | None = None,
        protection: ProtectionSettings = ProtectionSettings(),
        draining: DrainSettings = DrainSettings(),
    ) -> None:
        self.max_layers = max_layers
        self.adapt = adapt
        self.protection = Protection(protection, protect, max_layers, bits_per_code, frame_s)
        self.drain = Drainer(drain_above_ms, draining)
        self.delivery = DeliveryWindow(window_s, overhead_bytes)
        self.controller = LayerController(max_layers, bits_per_code, frame_s, overhead_bytes, max_frames_per_packet, min_layers=min_layers)
        top = self.controller.cost(max_layers, 1)
        ceiling = top + (self.protection.redundancy_bps(MAX_REDUNDANT, 1, self.protection.red_layers) if protect else 0.0)
        start = top if START_BPS < top <= START_ONE_FRAME_BPS and initial_bps is None and adapt else min(top, START_BPS)
        self.estimator = BandwidthEstimator(initial_bps or start, max_bps=max(1.2 * ceiling, MIN_CEILING_BPS), loss_window_s=window_s)
        self._start_trial = self.controller.best_fit(START_BPS) if start > START_BPS else None
        if adapt:
            self.plan = self._adaptive_plan(self.estimator.estimate, PathReport.calm())
        else:
            self.plan = self._fixed_plan()

    @property
    def loss(self) -> float:
        """Packet loss over the last window."""
        return self.delivery.loss

    def on_feedback(
        self, now: float, highest_seq: int, received: int, received_bytes: int, recovered: int, queue_delay_ms: float, send_buffer_bytes: int = 0
    ) -> SendPlan:
        if self._start_trial is not None:  # the first report: the start's trial runs from now
            self.controller.on_trial(now, self._start_trial, self.estimator.estimate)
            self._start_trial = None
        delivered = self.delivery.on_report(Counters(now, highest_seq, received, received_bytes, recovered), self.plan.frames_per_packet)
        self.protection.hold(now, self.delivery.loss)
        backlog_ms = 1000 * 8 * send_buffer_bytes / max(self.plan.wire_bps, 1.0)
        queue_delay_ms = max(queue_delay_ms, backlog_ms)
        queueing = queue_delay_ms > 1000 * self.estimator.overuse_s
        if not self.adapt:
            self.plan = self._fixed_plan()
            return self.plan
        if self.plan.send_every > 1:
            # We thinned our own packets: the received rate shows that, not the path. Hold.
            estimate = self.estimator.estimate
        else:
            heard = self._heard_loss(queue_delay_ms, queueing)
            estimate = self.estimator.on_feedback(now, heard, queue_delay_ms, delivered.received_bps, packets=self.delivery.packets)
        queue_s = queue_delay_ms / 1000
        draining = self.drain.on_report(now, self.plan.wire_bps * self.plan.send_every, queue_s, delivered.recent_bps)
        if draining:
            assert delivered.recent_bps is not None
            # A queueing path delivers its capacity, however little we add to its queue: that,
            # not the long window that still holds the rate from before the drop, is what the
            # estimate may be, or the estimate held through the drain refills the queue after it.
            self.estimator.estimate = max(self.estimator.min_bps, min(self.estimator.estimate, OVERUSE_SHARE * delivered.recent_bps))
            estimate = self.drain.budget(self.estimator.estimate, queue_s, delivered.recent_bps)
        self.plan = self._adaptive_plan(estimate, PathReport(now, queue_delay_ms, queueing, draining))
        return self.plan

    def _heard_loss(self, queue_delay_ms: float, queueing: bool) -> float:
        """The loss the estimator is fed: what the listener still hears, with protection on."""
        if not self.protection.enabled:
            return self.delivery.loss
        heard = self.delivery.residual_loss
        if not queueing and queue_delay_ms < 1000 * self.estimator.underuse_s:
            # Loss on a path that does not queue: hold, never cut. Bursty loss leaves residual
            # windows far above its mean, which the inherent loss does not follow.
            heard = min(heard, self.estimator.loss_cut_above(self.delivery.packets))
        return heard

    def _fixed_plan(self) -> SendPlan:
        decision = RateDecision(self.max_layers, 1, self.controller.cost(self.max_layers, 1))
        frames, layers = self.protection.choose(float("inf"), decision.frames_per_packet)
        return self._send_plan(decision, frames, layers, every=1)

    def _adaptive_plan(self, budget: float, report: PathReport) -> SendPlan:
        protection = self.protection
        max_fpp = None
        # Under heavy (bursty) loss, one frame a packet where it fits: a burst of lost packets
        # then takes less audio than packed frames would lose.
        if protection.heavy_loss and self.controller.cost(protection.min_layers_one_frame, 1) <= budget * 2 / 3:
            max_fpp = 1
        # The controller sees the budget left after redundancy (at the packing it would choose).
        fpp = self.controller.best_fit(budget, max_fpp).frames_per_packet
        frames, layers = protection.choose(budget, fpp)
        decision = self.controller.update(report.now, budget - protection.redundancy_bps(frames, fpp, layers), max_fpp, report.queue_ms)
        frames, layers = protection.choose(budget, decision.frames_per_packet)
        if report.queueing or decision.wire_bps + protection.redundancy_bps(frames, decision.frames_per_packet, layers) > budget:
            frames, layers = 0, 0  # congestion loss: redundancy would only add to it
        every = 1
        if report.draining and decision.wire_bps > budget > 0:
            every = self.drain.send_every(decision.wire_bps, budget)
        return self._send_plan(decision, frames, layers, every)

    def _send_plan(self, decision: RateDecision, frames: int, layers: int, every: int) -> SendPlan:
        red = self.protection.redundancy_bps(frames, decision.frames_per_packet, layers)
        # Under heavy loss the copies reach BURST_HORIZON_FRAMES back: dense when there are
        # enough of them, spread when not (short holes that concealment bridges, not one long gap).
        spacing = burst_spacing(frames) if frames > 1 and self.protection.heavy_loss else 1
        return SendPlan(decision.layers, decision.frames_per_packet, frames, layers, (decision.wire_bps + red) / every, self.estimator.estimate, every, spacing)
