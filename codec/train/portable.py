"""A training set small enough to carry to a lent GPU machine, and back to the trainer's form.

The device tool carries at most 64 MiB of working tree, and `data/` holds about 4 hours of
16-bit speech (460 MB). `pack` takes whole recordings, drawn at random (seeded) from every
source in the manifest, up to `minutes`, stores them as 8-bit mu-law (G.711's curve, about
38 dB SNR, far above what a 3-12 kbit/s codec keeps) compressed with zlib: about 0.68 bytes a
sample, so 45 minutes fit in 30 MB. `unpack` writes `speech.npy` and `speech_val.npy` as the
trainer reads them; it needs numpy alone (nothing can be installed on the device machine).
"""

from __future__ import annotations

import json
import zlib
from pathlib import Path

import numpy as np

_MU = 255.0
_FILES = {"speech": "speech.mulaw.z", "speech_val": "speech_val.mulaw.z"}


def mulaw_encode(pcm: np.ndarray) -> np.ndarray:
    """int16 samples -> int8 mu-law codes."""
    x = pcm.astype(np.float32) / 32768.0
    y = np.sign(x) * np.log1p(_MU * np.abs(x)) / np.log1p(_MU)
    return np.clip(np.round(y * 127), -127, 127).astype(np.int8)


def mulaw_decode(codes: np.ndarray) -> np.ndarray:
    """int8 mu-law codes -> int16 samples."""
    y = codes.astype(np.float32) / 127.0
    x = np.sign(y) * ((1.0 + _MU) ** np.abs(y) - 1.0) / _MU
    return np.clip(np.round(x * 32767), -32768, 32767).astype(np.int16)


def pack(data_dir: Path, out: Path, minutes: float = 45.0, val_minutes: float = 2.0, seed: int = 0) -> dict:
    """Write a portable subset of `data_dir` (built by `python -m codec data build`) to `out`."""
    manifest = json.loads((data_dir / "manifest.json").read_text())
    rate = int(manifest["sample_rate"])
    out.mkdir(parents=True, exist_ok=True)
    summary: dict = {"sample_rate": rate, "seed": seed, "format": "int8 mu-law, zlib", "streams": {}}
    rng = np.random.default_rng(seed)
    for stream, budget_min in (("speech", minutes), ("speech_val", val_minutes)):
        pcm = np.load(data_dir / f"{stream}.npy", mmap_mode="r")
        items = [it for it in manifest["items"] if it["stream"] == stream]
        budget = int(budget_min * 60 * rate)
        parts: list[np.ndarray] = []
        sources: dict[str, int] = {}  # samples taken from each source
        total = 0
        for i in rng.permutation(len(items)):
            if total >= budget:
                break
            item = items[i]
            parts.append(np.asarray(pcm[item["offset"] : item["offset"] + item["samples"]]))
            sources[item["source"]] = sources.get(item["source"], 0) + item["samples"]
            total += item["samples"]
        codes = mulaw_encode(np.concatenate(parts) if parts else np.zeros(0, np.int16))
        (out / _FILES[stream]).write_bytes(zlib.compress(codes.tobytes(), 9))
        summary["streams"][stream] = {
            "seconds": round(total / rate, 1),
            "bytes": (out / _FILES[stream]).stat().st_size,
            "seconds_by_source": {k: round(v / rate, 1) for k, v in sorted(sources.items())},
        }
    (out / "pack.json").write_text(json.dumps(summary, indent=1))
    return summary


def unpack(src: Path, data_dir: Path) -> dict[str, float]:
    """Expand a pack into the trainer's `speech.npy` / `speech_val.npy`; returns seconds per stream."""
    rate = json.loads((src / "pack.json").read_text())["sample_rate"]
    data_dir.mkdir(parents=True, exist_ok=True)
    seconds = {}
    for stream, name in _FILES.items():
        codes = np.frombuffer(zlib.decompress((src / name).read_bytes()), dtype=np.int8)
        np.save(data_dir / f"{stream}.npy", mulaw_decode(codes))
        seconds[stream] = round(codes.size / rate, 1)
    return seconds
