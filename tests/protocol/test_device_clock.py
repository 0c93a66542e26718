"""A slow output device: its backlog makes the playout wait instead of a queue dropping frames."""

from __future__ import annotations

import pytest

from protocol.device_clock import DEVICE_BACKLOG_FRAMES, DeviceClock

FRAME_S = 0.02


def _simulate(ppm: float, seconds: float, clock: DeviceClock | None) -> tuple[int, int]:
    """Pop a frame at each playout deadline, the device takes one every FRAME_S * (1 + ppm):
    returns (the most frames ever queued for the device, frames popped)."""
    device_period = FRAME_S * (1 + ppm * 1e-6)
    cursor, queued, most, popped = 0.0, 0, 0, 0
    next_take = device_period
    while cursor < seconds:
        while next_take <= cursor:  # the device's callbacks up to now
            queued = max(0, queued - 1)
            next_take += device_period
        queued += 1
        popped += 1
        most = max(most, queued)
        cursor += FRAME_S + (clock.extra_wait(queued) if clock else 0.0)
    return most, popped


@pytest.mark.parametrize("ppm", [200.0, 1000.0])
def test_a_slow_device_keeps_a_short_backlog_instead_of_growing_one(ppm: float) -> None:
    clock = DeviceClock(FRAME_S)
    most, popped = _simulate(ppm, 3600.0, clock)
    drifted = 3600.0 * ppm * 1e-6 / FRAME_S  # frames the device fell behind in an hour
    assert most <= DEVICE_BACKLOG_FRAMES + 1
    assert clock.waits >= drifted - DEVICE_BACKLOG_FRAMES - 1  # one wait a drifted frame
    unhandled, _ = _simulate(ppm, 3600.0, None)
    assert unhandled > 25  # without it the backlog would outgrow the sink's queue (frames dropped)


def test_a_file_or_a_punctual_device_never_waits() -> None:
    clock = DeviceClock(FRAME_S)
    assert clock.extra_wait(None) == 0.0 and clock.extra_wait(DEVICE_BACKLOG_FRAMES) == 0.0
    most, _ = _simulate(-500.0, 120.0, clock)  # a fast device: underruns, no waits
    assert clock.waits == 0 and most == 1
