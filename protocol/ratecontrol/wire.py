"""What a plan costs on the wire, and how a rate in bit/s becomes a model's stage count."""

from __future__ import annotations

import math

from protocol.packets import HEADER_BYTES


def stages_for_bps(bps: float, bits_per_code: int, frame_s: float) -> int:
    """The stage count nearest to `bps` of payload (at least one).

    Rate control states its rates in bit/s of payload rather than in stages, because a stage
    is worth a different rate in each model and bit/s is what a rate means to a listener."""
    return max(1, round(bps * frame_s / bits_per_code))


def wire_bps(layers: int, frames_per_packet: float, bits_per_code: int, frame_s: float, overhead_bytes: int) -> float:
    """The wire rate of `layers` stages a frame, `frames_per_packet` frames a packet: the
    network's `overhead_bytes` and our header once a packet, a layer-count byte and the codes
    once a frame."""
    payload = math.ceil(layers * bits_per_code / 8)
    packet = overhead_bytes + HEADER_BYTES + frames_per_packet * (1 + payload)
    return 8 * packet / (frames_per_packet * frame_s)
