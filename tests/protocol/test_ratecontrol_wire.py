"""What a plan costs on the wire, and rates as stage counts."""

from __future__ import annotations

import numpy as np

from protocol.packets import HEADER_BYTES, OVERHEAD_WEBSOCKET, Frame, MediaPacket, encode_packet
from protocol.ratecontrol import stages_for_bps, wire_bps


def test_the_cost_counts_every_byte_of_a_packet_and_the_overhead() -> None:
    frames = tuple(Frame(np.zeros(7, dtype=np.int64)) for _ in range(2))
    packet = encode_packet(MediaPacket(seq=0, timestamp=0, frames=frames), bits=4)
    assert len(packet) == HEADER_BYTES + 2 * (1 + 4)  # 7 codes of 4 bits: 4 bytes a frame
    assert wire_bps(7, 2, 4, 0.02, OVERHEAD_WEBSOCKET) == 8 * (OVERHEAD_WEBSOCKET + len(packet)) / 0.04


def test_packing_frames_spreads_the_overhead() -> None:
    costs = [wire_bps(12, fpp, 10, 0.02, 90) for fpp in (1, 1.5, 2, 3, 6)]
    assert costs == sorted(costs, reverse=True)


def test_a_rate_is_the_nearest_stage_count_and_at_least_one() -> None:
    assert stages_for_bps(2_000, 4, 0.02) == 10  # 40 bits a frame
    assert stages_for_bps(2_000, 10, 0.02) == 4
    assert stages_for_bps(1.0, 10, 0.02) == 1
