"""Audio sources: 20 ms frames of float32 at the codec's rate, as an async iterator."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from pathlib import Path

import numpy as np

from codec.audio_io import load_audio
from codec.errors import AudioError


class FileSource:
    """A file, resampled and cut into frames; paced in real time unless `realtime=False`.

    `start_at` (event-loop time) is when "capture" of frame 0 began; by default, when
    iteration starts. The transmitter sets it to the instant it stamps as the capture epoch,
    so that mouth-to-ear delay counts the handshake-free part of the pipeline only once.
    """

    start_at: float | None = None

    def __init__(self, path: Path, sample_rate: int, hop: int, realtime: bool = True) -> None:
        audio, _ = load_audio(path, sample_rate)
        if audio.size == 0:
            raise AudioError(f"{path}: contains no audio samples")
        frames = -(-audio.size // hop)
        padded = np.zeros(frames * hop, np.float32)
        padded[: audio.size] = audio
        self.frames = padded.reshape(frames, hop)
        self.frame_s = hop / sample_rate
        self.realtime = realtime

    async def __aiter__(self) -> AsyncIterator[np.ndarray]:
        loop = asyncio.get_running_loop()
        start = self.start_at if self.start_at is not None else loop.time()
        for i, frame in enumerate(self.frames):
            if self.realtime:
                # Frame i is complete at start + (i + 1) * frame_s, as a microphone's would be.
                delay = start + (i + 1) * self.frame_s - loop.time()
                if delay > 0:
                    await asyncio.sleep(delay)
            else:
                await asyncio.sleep(0)
            yield frame


class ToneSource(FileSource):
    """A sine tone (for checks without a file)."""

    def __init__(self, sample_rate: int, hop: int, seconds: float = 5.0, hz: float = 440.0, realtime: bool = True) -> None:
        t = np.arange(int(seconds * sample_rate)) / sample_rate
        frames = len(t) // hop
        self.frames = (0.2 * np.sin(2 * np.pi * hz * t[: frames * hop])).astype(np.float32).reshape(frames, hop)
        self.frame_s = hop / sample_rate
        self.realtime = realtime
