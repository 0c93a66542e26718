"""Loss and received rates from the receiver's cumulative counters."""

from __future__ import annotations

import math

from protocol.ratecontrol import Counters, DeliveryWindow


def test_loss_and_what_redundancy_left_of_it() -> None:
    window = DeliveryWindow(window_s=1.0, overhead_bytes=50)
    window.on_report(Counters(0.0, 0, 0, 0, 0), frames_per_packet=2)
    window.on_report(Counters(0.5, 100, 90, 2_700, 15), frames_per_packet=2)
    assert math.isclose(window.loss, 0.10)
    assert math.isclose(window.residual_loss, (10 * 2 - 15) / 200)  # 20 frames lost, 15 recovered


def test_the_received_rate_counts_the_wire_overhead() -> None:
    window = DeliveryWindow(window_s=1.0, overhead_bytes=50)
    window.on_report(Counters(0.0, 0, 0, 0, 0), 1)
    delivered = window.on_report(Counters(1.0, 50, 50, 1_500, 0), 1)
    assert delivered.received_bps == 8 * (1_500 + 50 * 50) / 1.0
    assert window.on_report(Counters(1.1, 50, 50, 1_500, 0), 1).received_bps is not None
    empty = DeliveryWindow(1.0, 50)
    assert empty.on_report(Counters(0.0, 0, 0, 0, 0), 1).received_bps is None  # nothing to tell yet


def test_the_recent_rate_sees_a_drop_that_the_window_still_averages_away() -> None:
    window = DeliveryWindow(window_s=1.0, overhead_bytes=0)
    received = received_bytes = 0
    for i in range(20):
        per_report = 1_000 if i < 15 else 100  # bytes a 0.1 s report: the path's capacity fell
        received, received_bytes = received + 10, received_bytes + per_report
        delivered = window.on_report(Counters(0.1 * i, received, received, received_bytes, 0), 1)
    assert delivered.recent_bps is not None and delivered.received_bps is not None
    assert delivered.recent_bps < 0.5 * delivered.received_bps
    assert math.isclose(delivered.recent_bps, 8 * 100 / 0.1)


def test_a_flood_of_reports_keeps_the_window_bounded() -> None:
    window = DeliveryWindow(window_s=1.0, overhead_bytes=50)
    for i in range(1_000):
        window.on_report(Counters(i * 1e-4, i, i, 30 * i, 0), 1)
    assert len(window._reports) <= 128
