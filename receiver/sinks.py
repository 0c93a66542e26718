"""Where decoded audio goes: a WAV file (16-bit) or, with sounddevice, a speaker."""

from __future__ import annotations

from pathlib import Path
from typing import Protocol

import numpy as np
import soundfile as sf


class Sink(Protocol):
    def write(self, audio: np.ndarray) -> None: ...

    def close(self) -> None: ...


class WavSink:
    def __init__(self, path: Path, sample_rate: int) -> None:
        self.path = path
        self._file = sf.SoundFile(str(path), "w", samplerate=sample_rate, channels=1, subtype="PCM_16")

    def write(self, audio: np.ndarray) -> None:
        self._file.write(np.clip(audio, -1.0, 1.0))

    def close(self) -> None:
        if not self._file.closed:
            self._file.close()
