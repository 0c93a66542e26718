"""Sender-side bandwidth estimate and the RVQ layer count that fits it (sans-I/O).

BandwidthEstimator follows GCC's two signals plus the local send buffer:
- loss (from receiver feedback): under 2 % the estimate may grow, over 10 % it is cut to
  (1 - loss / 2) of itself, in between it holds;
- queueing delay (receiver feedback: how far recent frames arrived above the fastest path;
  no clock sync needed): over `overuse_ms` the link is queueing, so the estimate drops to
  85 % of what the receiver actually got; under `underuse_ms` it may grow;
- the local send buffer: bytes stuck in our own socket mean the link is full.
Growth is multiplicative (15 % a second) while probing; a drop is immediate.

LayerController turns the estimate into (layers, frames per packet) counting the wire, not
the payload: each packet pays `overhead_bytes` (IP/UDP/DTLS/SCTP for WebRTC ~90 B, TCP/IP +
websocket ~50 B) plus our 8-byte header and a byte per frame. When even one layer per 20 ms
packet does not fit, it packs 2 or 3 frames per packet (40-60 ms). It goes down at once and up
only when the next level fits with 15 % to spare for `up_hold_s`.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

HEADER_BYTES = 8  # protocol.packets header
OVERHEAD_WEBRTC = 90
OVERHEAD_WEBSOCKET = 50


@dataclass(frozen=True)
class RateDecision:
    layers: int
    frames_per_packet: int
    wire_bps: float  # what this choice costs on the wire


def wire_bps(layers: int, frames_per_packet: int, bits_per_code: int, frame_s: float, overhead_bytes: int) -> float:
    payload = math.ceil(layers * bits_per_code / 8)
    packet = overhead_bytes + HEADER_BYTES + frames_per_packet * (1 + payload)
    return 8 * packet / (frames_per_packet * frame_s)


class BandwidthEstimator:
    def __init__(
        self, initial_bps: float, min_bps: float = 4_000.0, max_bps: float = 64_000.0,
        overuse_ms: float = 60.0, underuse_ms: float = 20.0, growth_per_s: float = 0.15,
    ) -> None:
        self.estimate = initial_bps
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
        elif loss_fraction < 0.02 and queue_s < self.underuse_s:
            self.estimate *= (1 + self.growth) ** dt
        self.estimate = max(self.min_bps, min(self.max_bps, self.estimate))
        return self.estimate


class LayerController:
    def __init__(
        self, max_layers: int, bits_per_code: int = 10, frame_s: float = 0.02, overhead_bytes: int = OVERHEAD_WEBRTC,
        max_frames_per_packet: int = 3, up_hold_s: float = 1.0,
    ) -> None:
        self.max_layers = max_layers
        self.bits = bits_per_code
        self.frame_s = frame_s
        self.overhead = overhead_bytes
        self.max_fpp = max_frames_per_packet
        self.up_hold_s = up_hold_s
        self.current: RateDecision | None = None  # the first update takes the best fit
        self._up_since: float | None = None

    def cost(self, layers: int, fpp: int) -> float:
        return wire_bps(layers, fpp, self.bits, self.frame_s, self.overhead)

    def best_fit(self, budget_bps: float) -> RateDecision:
        """Most layers that fit; fewest frames per packet (least delay) among equals."""
        best = RateDecision(1, self.max_fpp, self.cost(1, self.max_fpp))
        for fpp in range(1, self.max_fpp + 1):
            for layers in range(self.max_layers, 0, -1):
                if self.cost(layers, fpp) <= budget_bps:
                    if layers > best.layers or (layers == best.layers and fpp < best.frames_per_packet):
                        best = RateDecision(layers, fpp, self.cost(layers, fpp))
                    break
        return best

    def update(self, now: float, estimate_bps: float) -> RateDecision:
        fit = self.best_fit(estimate_bps)
        if self.current is None:
            self.current = fit
        elif fit.wire_bps < self.current.wire_bps or fit.layers < self.current.layers:
            self.current, self._up_since = fit, None  # down at once
        elif fit.layers > self.current.layers or fit.frames_per_packet < self.current.frames_per_packet:
            roomy = self.best_fit(estimate_bps / 1.15)
            if roomy.layers > self.current.layers or roomy.frames_per_packet < self.current.frames_per_packet:
                self._up_since = now if self._up_since is None else self._up_since
                if now - self._up_since >= self.up_hold_s:
                    self.current, self._up_since = roomy, None
            else:
                self._up_since = None
        return self.current
