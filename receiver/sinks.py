"""Where decoded audio goes: a WAV file (16-bit) or, with sounddevice, a speaker."""

from __future__ import annotations

import os
import time
from pathlib import Path
from typing import Protocol

import numpy as np
import soundfile as sf


class Sink(Protocol):
    dropped: int  # frames lost to a full device queue (reported as sink_dropped)
    underruns: int  # times the device found nothing to play (reported as sink_underruns)

    def write(self, audio: np.ndarray) -> None: ...

    def close(self) -> None: ...


class WavSink:
    """A 16-bit WAV file. `atomic`: written beside `path` (.STEM.part.SUFFIX) and moved onto it by
    `close`, so that `discard` (a call that never connected) leaves an existing file as it was."""

    dropped = 0  # a file takes every frame when it is written: nothing is lost or runs dry
    underruns = 0

    def __init__(self, path: Path, sample_rate: int, atomic: bool = False) -> None:
        self.path = path
        self._atomic = atomic
        self._written = path.with_name(f".{path.stem}.part{path.suffix}") if atomic else path
        self._file = sf.SoundFile(str(self._written), "w", samplerate=sample_rate, channels=1, subtype="PCM_16")

    def write(self, audio: np.ndarray) -> None:
        self._file.write(np.clip(audio, -1.0, 1.0))

    def close(self) -> None:
        if not self._file.closed:
            self._file.close()
            if self._atomic:
                os.replace(self._written, self.path)

    def discard(self) -> None:
        """Close and delete what was written (never a file that was there before, when atomic)."""
        if not self._file.closed:
            self._file.close()
            self._written.unlink(missing_ok=True)


class SpeakerSink:
    """A sound card output (sounddevice). `write` never blocks: frames queue for the
    device's callback, which plays silence when the queue is empty (an underrun)."""

    on_played = None  # called with each block as the device takes it (the echo canceller's far-end reference)

    def __init__(self, sample_rate: int, hop: int, device: str | int | None = None, max_queued: int = 25) -> None:
        try:
            import sounddevice as sd
        except OSError as exc:
            raise OSError(f"speaker output needs PortAudio (apt-get install libportaudio2): {exc}") from None
        from collections import deque

        self._queue: deque[np.ndarray] = deque(maxlen=max_queued)
        self.underruns = 0
        self.dropped = 0  # frames lost to a full queue (the device runs slower than the playout clock)
        self._stream = sd.OutputStream(samplerate=sample_rate, blocksize=hop, channels=1, dtype="float32", device=device, callback=self._callback)
        self._stream.start()

    def _callback(self, outdata, frames, time_info, status) -> None:  # PortAudio's thread
        if self._queue:
            block = self._queue.popleft()
            outdata[: block.size, 0] = block[:frames]
            outdata[block.size :, 0] = 0.0
        else:
            self.underruns += 1
            outdata.fill(0.0)
        if self.on_played is not None:
            self.on_played(outdata[:, 0])

    @property
    def latency_s(self) -> float:
        """The device's reported output latency (callback to DAC)."""
        return float(self._stream.latency)

    @property
    def queued(self) -> int:
        """Frames waiting for the device."""
        return len(self._queue)

    def write(self, audio: np.ndarray) -> None:
        if len(self._queue) == self._queue.maxlen:
            self.dropped += 1  # the append below pushes the oldest frame out unplayed
        self._queue.append(np.clip(audio, -1.0, 1.0).astype(np.float32))

    def close(self) -> None:
        for _ in range(50):  # let up to a second of queued audio play out
            if not self._queue:
                break
            time.sleep(0.02)
        self._stream.stop()
        self._stream.close()
