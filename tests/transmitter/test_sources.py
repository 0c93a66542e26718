"""Sources: the tone is made frame by frame (an hour of it once blocked every call's start)."""

from __future__ import annotations

import asyncio
import time

import numpy as np

from transmitter.sender import SendStats
from transmitter.sources import ContinuingSource, MicSource, ToneSource, capture_losses


def _tone(seconds: float, hz: float = 440.0) -> np.ndarray:
    t = np.arange(int(seconds * 16000) // 320 * 320) / 16000
    return (0.2 * np.sin(2 * np.pi * hz * t)).astype(np.float32).reshape(-1, 320)


def test_an_hour_of_tone_costs_nothing_until_read() -> None:
    start = time.process_time()
    source = ToneSource(16000, 320, seconds=3600)
    assert time.process_time() - start < 0.05  # made whole: ~4 s and 1 GB, the event loop blocked
    assert len(source.frames) == 180_000
    assert source.frames[-1].shape == (320,) and source.frames[-1].dtype == np.float32


def test_the_tone_frames_are_the_sine_they_always_were() -> None:
    source = ToneSource(16000, 320, seconds=1.01, hz=300, realtime=False)
    expected = _tone(1.01, 300)
    assert np.array_equal(source.frames[:10], expected[:10]) and np.array_equal(source.frames[-1], expected[-1])

    async def read() -> list[np.ndarray]:
        return [frame async for frame in source]

    frames = asyncio.run(read())
    assert len(frames) == len(expected) == 50 and np.array_equal(np.stack(frames), expected)
    assert source.frames[3:2].shape == (0, 320)


class _Wrapper:
    """A front end's kind of wrapper: forwards unknown names inward (counted once, not twice)."""

    def __init__(self, source: object) -> None:
        self.source = source

    def __getattr__(self, name: str) -> object:
        return getattr(self.source, name)


def test_frames_lost_at_capture_are_reported_in_the_send_snapshot() -> None:
    mic = MicSource.__new__(MicSource)  # no sound card: only the counter matters here
    mic.overruns = 4
    continuing = ContinuingSource(_Wrapper(mic), 0.02)
    continuing.dropped = 7
    assert capture_losses(continuing) == (4, 7) and capture_losses(None) == (0, 0)
    snapshot = SendStats(frames=10, sent=9, drained=1).snapshot(continuing)
    assert (snapshot.capture_overruns, snapshot.outage_dropped, snapshot.drained) == (4, 7, 1)
