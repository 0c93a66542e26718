"""Audio sources: 20 ms frames of float32 at the codec's rate, as an async iterator."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Protocol

import numpy as np

from codec.audio_io import load_audio
from codec.errors import AudioError


class FrameSource(Protocol):
    """What the sender reads: frames in capture order. The sender sets `start_at` (event-loop
    time) when capture of frame 0 begins; a source that sets its own pace may ignore it."""

    start_at: float | None

    def __aiter__(self) -> AsyncIterator[np.ndarray]: ...


class _Frames(Protocol):
    """Frames [hop] float32 in order: an array of them, or ones computed as they are read."""

    def __len__(self) -> int: ...

    def __iter__(self) -> Iterator[np.ndarray]: ...


class _PacedSource:
    """Frames handed over one a `frame_s`, in real time unless `realtime=False`.

    `start_at` (event-loop time) is when "capture" of frame 0 began; by default, when
    iteration starts. The transmitter sets it to the instant it stamps as the capture epoch,
    so that mouth-to-ear delay counts the handshake-free part of the pipeline only once.
    """

    start_at: float | None = None
    frames: _Frames
    frame_s: float
    realtime: bool

    def capture_start(self, first_frame_at: float) -> float:
        """Event-loop time at which frame 0's first sample was captured."""
        return self.start_at if self.start_at is not None else first_frame_at - self.frame_s

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


class FileSource(_PacedSource):
    """A file, resampled and cut into frames; paced in real time unless `realtime=False`."""

    frames: np.ndarray  # [frames, hop]

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


class ToneSource(_PacedSource):
    """A sine tone (for checks without a file)."""

    frames: _ToneFrames

    def __init__(self, sample_rate: int, hop: int, seconds: float = 5.0, hz: float = 440.0, realtime: bool = True) -> None:
        # Frames are made as they are read: `ssvoip listen --input tone` asks for an hour, which
        # made whole took 1 GB and blocked the event loop for 4 s at the start of every call.
        self.frames = _ToneFrames(sample_rate, hop, int(seconds * sample_rate) // hop, hz)
        self.frame_s = hop / sample_rate
        self.realtime = realtime


class _ToneFrames:
    """The frames of a sine tone, computed on access ([frames, hop] float32 when sliced)."""

    def __init__(self, sample_rate: int, hop: int, frames: int, hz: float) -> None:
        self.sample_rate, self.hop, self.count, self.hz = sample_rate, hop, frames, hz

    def _make(self, first: int, stop: int) -> np.ndarray:
        t = np.arange(first * self.hop, stop * self.hop) / self.sample_rate
        return (0.2 * np.sin(2 * np.pi * self.hz * t)).astype(np.float32).reshape(-1, self.hop)

    def __len__(self) -> int:
        return self.count

    def __iter__(self) -> Iterator[np.ndarray]:
        return (self._make(i, i + 1)[0] for i in range(self.count))

    def __getitem__(self, key):
        if isinstance(key, slice):
            first, stop, step = key.indices(self.count)
            return self._make(first, stop)[::step] if stop > first else np.zeros((0, self.hop), np.float32)
        index = range(self.count)[key]
        return self._make(index, index + 1)[0]


class MicSource:
    """A sound card input (sounddevice), frames handed to the event loop from its callback."""

    def __init__(self, sample_rate: int, hop: int, device: str | int | None = None, seconds: float | None = None) -> None:
        try:
            import sounddevice  # noqa: F401
        except OSError as exc:  # PortAudio missing
            raise AudioError(f"microphone input needs PortAudio (apt-get install libportaudio2): {exc}") from None
        self.sample_rate = sample_rate
        self.hop = hop
        self.device = device
        self.max_frames = None if seconds is None else int(seconds * sample_rate / hop)
        self.start_at: float | None = None  # ignored: the sound card sets the pace
        self.overruns = 0  # frames dropped because the encoder fell behind (SendSnapshot.capture_overruns)
        self.latency_s: float | None = None  # the card's reported input latency, once open (the echo canceller's delay)

    def capture_start(self, first_frame_at: float) -> float:
        """The first frame is handed over when complete: its capture began a frame earlier
        (the card's own input latency, unknown here, is not counted)."""
        return first_frame_at - self.hop / self.sample_rate

    async def __aiter__(self) -> AsyncIterator[np.ndarray]:
        import sounddevice as sd

        loop = asyncio.get_running_loop()
        queue: asyncio.Queue[np.ndarray] = asyncio.Queue(maxsize=50)

        def put(frame: np.ndarray) -> None:
            if queue.full():
                self.overruns += 1  # the encoder fell behind: drop the oldest audio, not the newest
                queue.get_nowait()
            queue.put_nowait(frame)

        def callback(indata, frames, time_info, status) -> None:  # PortAudio's thread
            loop.call_soon_threadsafe(put, indata[:, 0].copy())

        try:
            stream = sd.InputStream(samplerate=self.sample_rate, blocksize=self.hop, channels=1, dtype="float32", device=self.device, callback=callback)
        except (sd.PortAudioError, ValueError) as exc:
            raise AudioError(f"cannot open the microphone {self.device!r}: {exc}") from None
        self.latency_s = float(stream.latency)
        count = 0
        with stream:
            while self.max_frames is None or count < self.max_frames:
                yield await queue.get()
                count += 1


def list_devices() -> str:
    try:
        import sounddevice as sd
    except OSError as exc:
        raise AudioError(f"audio devices need PortAudio (apt-get install libportaudio2): {exc}") from None
    return str(sd.query_devices())


class ContinuingSource:
    """One source across reconnections of a call.

    A pump task reads the source into a small queue; each session's sender reads the queue.
    During an outage the source keeps going (a microphone keeps capturing, a file keeps its
    pace) and the queue keeps only the newest `keep` frames, so the next session starts with
    fresh audio instead of a burst of stale frames. Cancelling a session's sender does not end
    the source (it would, if the sender iterated the source itself: cancellation reaches into
    the generator).
    """

    def __init__(self, source, frame_s: float, keep: int = 3) -> None:
        self.source = source
        self.frame_s = frame_s
        self.start_at: float | None = None  # set by the sender; the pump paces the source
        self.finished = False
        self.dropped = 0  # frames dropped while no session read them (SendSnapshot.outage_dropped)
        self._queue: asyncio.Queue[np.ndarray | None] = asyncio.Queue()
        self._keep = keep
        self._pump: asyncio.Task | None = None

    def capture_start(self, first_frame_at: float) -> float:
        return first_frame_at - self.frame_s  # the frame just completed

    async def _run(self) -> None:
        try:
            async for frame in self.source:
                while self._queue.qsize() >= self._keep:
                    self._queue.get_nowait()
                    self.dropped += 1
                self._queue.put_nowait(frame)
        finally:
            self._queue.put_nowait(None)

    async def __aiter__(self) -> AsyncIterator[np.ndarray]:
        if self._pump is None:
            self._pump = asyncio.create_task(self._run())
        while True:
            frame = await self._queue.get()
            if frame is None:
                self.finished = True
                return
            yield frame

    def close(self) -> None:
        if self._pump is not None:
            self._pump.cancel()


def capture_losses(source: object) -> tuple[int, int]:
    """Input frames never encoded, as (sound card overruns, dropped during an outage), summed
    over `source` and the sources it wraps (each wrapper keeps the one inside as `source`; read
    from the instance's own attributes, since a wrapper may forward unknown names inward)."""
    overruns = dropped = 0
    for _ in range(8):
        own = getattr(source, "__dict__", None)
        if own is None:
            break
        if isinstance(source, MicSource):
            overruns += source.overruns
        elif isinstance(source, ContinuingSource):
            dropped += source.dropped
        source = own.get("source")
    return overruns, dropped
