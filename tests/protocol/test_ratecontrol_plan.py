"""What planning reads and writes: the path report, the send plan, the copies' spacing."""

from __future__ import annotations

import dataclasses

import pytest

from protocol.packets import MAX_REDUNDANT
from protocol.ratecontrol import BURST_HORIZON_FRAMES, PathReport, SendPlan, burst_spacing


def test_burst_spacing_reaches_the_horizon() -> None:
    assert burst_spacing(1) == 1 and burst_spacing(3) == 3  # 1, 4, 7 back
    for copies in range(2, MAX_REDUNDANT + 1):
        deepest = 1 + (copies - 1) * burst_spacing(copies)
        assert BURST_HORIZON_FRAMES - copies < deepest <= BURST_HORIZON_FRAMES


def test_redundant_backs_follow_the_spacing() -> None:
    plan = SendPlan(layers=6, frames_per_packet=1, redundant_frames=3, redundant_layers=2, wire_bps=1.0, estimate_bps=1.0, redundant_spacing=3)
    assert plan.redundant_backs == (1, 4, 7)
    assert dataclasses.replace(plan, redundant_frames=0).redundant_backs == ()


def test_a_path_report_is_frozen_and_starts_calm() -> None:
    calm = PathReport.calm(2.5)
    assert (calm.now, calm.queue_ms, calm.queueing, calm.draining) == (2.5, 0.0, False, False)
    with pytest.raises(dataclasses.FrozenInstanceError):
        calm.queueing = True  # type: ignore[misc]
