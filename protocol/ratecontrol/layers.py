"""The layer controller: the estimate in, (stages, frames per packet) out, counting the wire.

Each packet pays the network's `overhead_bytes` and our header, so when even the fewest useful
stages at one frame a packet do not fit, the controller packs more frames a packet (up to
`max_frames_per_packet`), and below that up to FLOOR_FRAMES_PER_PACKET with the fewest stages:
more packing delay in a trough costs less than a queue that never empties.

It goes down at once and up only when the next level fits with UP_MARGIN to spare for
`up_hold_s`, by at most `max_up_layers` a step (a probe, not a leap: an estimate that overshoots
a cap it cannot see would otherwise jump straight into a queue). Fewer frames a packet is a leap
by nature, so it goes half a frame at a time: first a trial of mixed packets (2, 1, 2, 1, ...:
1.5 frames a packet), which a path without the room queues on more slowly while the feedback
comes back. A leap that the path refuses within PROBE_FAIL_S is undone at the first sign of
queueing (PROBE_ABORT_MS, not the estimator's later overuse threshold), and that packing (and
any tighter one) is not tried again for a backoff that doubles with each refusal, from
MIN_FPP_BACKOFF_S to MAX_FPP_BACKOFF_S. `protocol.packetizer.PacketSizer` cuts a fractional
packing into whole packets.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from protocol.feedback import LEAP_QUEUE_MS
from protocol.packets import OVERHEAD_WEBRTC
from protocol.ratecontrol.wire import stages_for_bps, wire_bps

PROBE_FAIL_S = 2.0  # a leap to fewer frames a packet undone within this was refused by the path
PROBE_ABORT_MS = LEAP_QUEUE_MS  # queueing delay that undoes such a leap at once (the receiver reports it early)
MIN_FPP_BACKOFF_S, MAX_FPP_BACKOFF_S = 10.0, 60.0
MAX_UP_BPS = 1_500.0  # the most a step up adds, in payload bit/s (`stages_for_bps`)
UP_MARGIN = 1.15  # a step up must fit the estimate with this much to spare
UNBLOCK_RISE = 1.2  # an estimate this far above the one a refused leap was made on: the path changed
# Below what the fewest stages at three frames a packet cost, up to this many (120 ms, as Opus's
# longest packet): a path whose trough is under that rate otherwise holds its queue full.
FLOOR_FRAMES_PER_PACKET = 6


@dataclass(frozen=True)
class RateDecision:
    layers: int
    frames_per_packet: float  # whole, or halfway during a leap's trial (1.5: packets of 2, 1, 2, 1, ...)
    wire_bps: float  # what this choice costs on the wire

    @property
    def trial(self) -> bool:
        return self.frames_per_packet != int(self.frames_per_packet)


class LayerController:
    def __init__(
        self,
        max_layers: int,
        bits_per_code: int = 10,
        frame_s: float = 0.02,
        overhead_bytes: int = OVERHEAD_WEBRTC,
        max_frames_per_packet: int = 3,
        up_hold_s: float = 1.0,
        max_up_layers: int | None = None,
        floor_frames_per_packet: int = FLOOR_FRAMES_PER_PACKET,
        min_layers: int = 1,
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
        # The leap on trial and the refusals: the backoff resets when a leap to a refused packing
        # holds, and an estimate UNBLOCK_RISE above the refused leap's lifts the block early.
        self.fpp_backoff_s = 0.0
        self._fpp_probe_t: float | None = None
        self._fpp_probe_bps = 0.0  # the estimate the last leap was made on
        self._before_probe: RateDecision | None = None  # the plan the last leap left
        self._refused_bps = math.inf
        self._refused_fpp: float = 0  # packings of this many frames or fewer are refused for now
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
        that starts at one frame a packet above its start rate): refused as any leap is."""
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
            # after the estimator's overuse threshold, which left TCP a queue to drain.
            fit = min(fit, self._before_probe, key=lambda d: d.wire_bps)
        self._settle_trial(now)
        current = self.current
        if current is None:
            self.current = fit
        elif fit.wire_bps < current.wire_bps or fit.layers < current.layers or (max_fpp and current.frames_per_packet > max_fpp):
            self._go_down(now, fit)
        elif fit.layers > current.layers or fit.frames_per_packet < current.frames_per_packet:
            self._go_up(now, estimate_bps, max_fpp)
        assert self.current is not None  # every branch above leaves a decision
        return self.current

    def _settle_trial(self, now: float) -> None:
        """A leap that outlived PROBE_FAIL_S held: its trial ends, and if it reached a packing
        that was refused before, that refusal is forgiven."""
        if self._fpp_probe_t is not None and now - self._fpp_probe_t > PROBE_FAIL_S:
            if self.current is not None and self.current.frames_per_packet <= self._refused_fpp:
                self.fpp_backoff_s, self._refused_fpp = 0.0, 0
            self._fpp_probe_t = None

    def _go_down(self, now: float, fit: RateDecision) -> None:
        """At once; a leap on trial that goes back to more frames a packet was refused."""
        assert self.current is not None
        if self._fpp_probe_t is not None and fit.frames_per_packet > self.current.frames_per_packet:
            self.fpp_backoff_s = min(MAX_FPP_BACKOFF_S, max(MIN_FPP_BACKOFF_S, 2 * self.fpp_backoff_s))
            self._refused_fpp = max(self._refused_fpp, self.current.frames_per_packet)
            self._refused_bps = self._fpp_probe_bps
            self._fpp_blocked_until, self._fpp_probe_t = now + self.fpp_backoff_s, None
        self.current, self._up_since = fit, None

    def _go_up(self, now: float, estimate_bps: float, max_fpp: int | None) -> None:
        """Once the next level has fitted with room to spare for `up_hold_s`: one step of it."""
        current = self.current
        assert current is not None
        roomy = self.best_fit(estimate_bps / UP_MARGIN, max_fpp)
        blocked = now < self._fpp_blocked_until and estimate_bps < UNBLOCK_RISE * self._refused_bps
        if roomy.frames_per_packet <= self._refused_fpp < current.frames_per_packet and blocked:
            roomy = self._at_packing(estimate_bps / UP_MARGIN, math.floor(self._refused_fpp) + 1)
        if not (roomy.layers > current.layers or roomy.frames_per_packet < current.frames_per_packet):
            self._up_since = None  # it fits, but not with room to spare: the hold starts over
            return
        self._up_since = now if self._up_since is None else self._up_since
        if now - self._up_since >= self.up_hold_s:
            self.current, self._up_since = self._step_toward(now, roomy, estimate_bps), None

    def _step_toward(self, now: float, roomy: RateDecision, estimate_bps: float) -> RateDecision:
        current = self.current
        assert current is not None
        if roomy.frames_per_packet == current.frames_per_packet and roomy.layers > current.layers + self.max_up_layers:
            # A probe, not a leap: an estimate that does not see all of the path's traffic (SCTP's
            # acknowledgements) would otherwise jump into a queue and fall back again and again.
            layers = current.layers + self.max_up_layers
            return RateDecision(layers, roomy.frames_per_packet, self.cost(layers, roomy.frames_per_packet))
        if roomy.frames_per_packet < current.frames_per_packet:
            # Half a frame a packet at a time: the trial of mixed packets costs a fraction of the
            # leap, which a full path queues on more slowly. Above max_frames_per_packet (a
            # trough's floor): a frame at a time, with the fewest stages.
            floor = current.frames_per_packet > self.max_fpp
            step = max(roomy.frames_per_packet, current.frames_per_packet - (1.0 if floor else 0.5))
            layers = self.min_layers if floor else roomy.layers
            if not current.trial:  # a refusal goes back to the whole packing before the trial
                self._before_probe = current
            self._fpp_probe_t, self._fpp_probe_bps = now, estimate_bps
            return RateDecision(layers, step, self.cost(layers, step))
        return roomy
