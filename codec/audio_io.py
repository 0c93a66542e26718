"""Reading and writing audio files: any common format, rate or channel count in."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import soundfile as sf
import soxr

from codec.errors import AudioError

# Raw formats that carry no header; PyAV needs to be told what they are.
_RAW_FORMATS = {".g722": "g722"}


def _read_with_av(path: Path) -> tuple[np.ndarray, int]:
    import av

    try:
        with av.open(str(path), format=_RAW_FORMATS.get(path.suffix.lower())) as container:
            if not container.streams.audio:
                raise AudioError(f"{path}: no audio stream")
            stream = container.streams.audio[0]
            rate = stream.codec_context.sample_rate
            resampler = av.AudioResampler(format="flt", layout="mono", rate=rate)
            chunks = [out.to_ndarray().reshape(-1) for frame in container.decode(stream) for out in resampler.resample(frame)]
            chunks += [out.to_ndarray().reshape(-1) for out in resampler.resample(None)]
    except AudioError:
        raise
    except Exception as exc:  # PyAV raises many types for unreadable input
        raise AudioError(f"{path}: not a readable audio file ({type(exc).__name__})") from None
    if not rate:
        raise AudioError(f"{path}: no sample rate")
    return (np.concatenate(chunks) if chunks else np.zeros(0, np.float32)).astype(np.float32), int(rate)


def read_audio(path: str | Path) -> tuple[np.ndarray, int]:
    """Read any audio file as float32 mono (channels averaged) at its own rate."""
    path = Path(path)
    if not path.is_file():
        raise AudioError(f"{path}: no such file")
    if path.suffix.lower() in _RAW_FORMATS:
        return _read_with_av(path)
    try:
        data, rate = sf.read(str(path), dtype="float32", always_2d=True)
        return np.ascontiguousarray(data.mean(axis=1), dtype=np.float32), int(rate)
    except (sf.LibsndfileError, RuntimeError, TypeError, ValueError):
        return _read_with_av(path)


def resample(audio: np.ndarray, from_rate: int, to_rate: int) -> np.ndarray:
    if from_rate == to_rate or audio.size == 0:
        return audio.astype(np.float32, copy=False)
    if not 1000 <= from_rate <= 768_000:
        raise AudioError(f"unsupported sample rate {from_rate} Hz")
    return soxr.resample(audio, from_rate, to_rate, quality="HQ").astype(np.float32)


def load_audio(path: str | Path, rate: int) -> tuple[np.ndarray, int]:
    """Read, downmix and resample to `rate`. Returns (audio, the file's own rate)."""
    audio, file_rate = read_audio(path)
    if not np.all(np.isfinite(audio)):
        raise AudioError(f"{path}: contains NaN or infinite samples")
    return resample(audio, file_rate, rate), file_rate


def write_audio(path: str | Path, audio: np.ndarray, rate: int) -> None:
    """Write 16-bit PCM (WAV, FLAC, ... by the file's extension)."""
    path = Path(path)
    try:
        sf.write(str(path), np.clip(audio, -1.0, 1.0), rate, subtype="PCM_16")
    except (sf.LibsndfileError, TypeError, ValueError) as exc:
        raise AudioError(f"{path}: cannot write audio ({exc})") from None
