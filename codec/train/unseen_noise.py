"""Noise the training never saw, for scoring the denoise switch (`codec eval --noise-snr`).

Training (`codec.train.augment.NoiseMixer`) mixes stationary coloured noise, babble cut from
the training speech and the data builder's music. Scoring on those would measure memory, not
denoising, so the evaluation draws from three other kinds:

- babble: three OTHER clips of the folder being scored, summed at equal level (the dev clips
  are validation-only, so other speakers and recordings than any training speech);
- music: tracks of an evaluation-reserved source (the dev clips' drascula-music tracks);
- street: synthesised traffic: low-frequency rumble whose level drifts, an engine hum with a
  wandering pitch, and cars passing by (broadband tyre noise swelling and fading).

Each (clip, SNR) pair gets one kind and one random draw, both decided by the clip's index
and the SNR alone, so a run is reproducible and `--noise-snr 5` mixes what `--noise-snr 0 5`
mixes at 5 dB. The SNR is the ratio of the whole clip's power to the whole noise's, as
training mixes it.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass

import numpy as np

BABBLE_TALKERS = 3
STREET_RUMBLE_HZ = 250.0  # traffic rumble lies mostly below this
CAR_EVERY_S = 2.5  # on average one car passes every this many seconds


def mix_at_snr(clean: np.ndarray, noise: np.ndarray, snr_db: float) -> np.ndarray:
    """clean + noise scaled so that their power ratio is `snr_db`."""
    clean_power = float(np.mean(np.square(clean, dtype=np.float64)))
    noise_power = float(np.mean(np.square(noise, dtype=np.float64)))
    scale = np.sqrt(clean_power / max(noise_power, 1e-20)) * 10 ** (-snr_db / 20)
    return (clean + scale * noise).astype(np.float32)


def _rms_normalised(x: np.ndarray) -> np.ndarray:
    return x / max(float(np.sqrt(np.mean(np.square(x, dtype=np.float64)))), 1e-9)


def _excerpt(source: np.ndarray, length: int, rng: np.random.Generator) -> np.ndarray:
    """`length` samples of `source` from a random point, looped when the source is shorter."""
    start = int(rng.integers(source.size))
    return np.resize(np.roll(source, -start), length)


def _shaped_noise(length: int, rng: np.random.Generator, rate: int, gain_of_hz: Callable[[np.ndarray], np.ndarray]) -> np.ndarray:
    """White noise through a zero-phase filter whose gain `gain_of_hz(frequencies)` gives."""
    spectrum = np.fft.rfft(rng.standard_normal(length))
    return np.fft.irfft(spectrum * gain_of_hz(np.fft.rfftfreq(length, 1 / rate)), n=length)


def street_noise(length: int, rng: np.random.Generator, rate: int = 16_000) -> np.ndarray:
    """Traffic: rumble with a drifting level, an engine hum, and cars passing by."""
    t = np.arange(length) / rate
    # Rumble: brown-ish noise, steeply low-passed, its level drifting slowly (0.1-0.5 Hz).
    rumble = _rms_normalised(_shaped_noise(length, rng, rate, lambda f: 1 / (1 + f / 20.0) / (1 + (f / STREET_RUMBLE_HZ) ** 4)))
    drift = 1 + 0.4 * np.sin(2 * np.pi * rng.uniform(0.1, 0.5) * t + rng.uniform(0, 2 * np.pi))
    # Engine hum: a few harmonics of an idling engine whose pitch wanders by +-10 %.
    f0 = rng.uniform(40.0, 80.0) * (1 + 0.1 * np.sin(2 * np.pi * rng.uniform(0.05, 0.3) * t))
    phase = 2 * np.pi * np.cumsum(f0) / rate
    hum = np.sum([np.sin(k * phase + rng.uniform(0, 2 * np.pi)) / k for k in range(1, 7)], axis=0)
    # Passing cars: tyre noise (pink, rolled off above ~3 kHz) whose power follows a source
    # driving by at distance d and speed v: 1 / (1 + ((t - t0) / w)^2), w = d / v (5 m at 30-90 km/h).
    cars = np.zeros(length)
    tyres = _rms_normalised(_shaped_noise(length, rng, rate, lambda f: 1 / np.sqrt(np.maximum(f, 50.0)) / (1 + (f / 3000.0) ** 2)))
    duration = length / rate
    for _ in range(max(1, int(rng.poisson(duration / CAR_EVERY_S)))):
        passing, width, loudness = rng.uniform(0, duration), rng.uniform(0.2, 0.7), rng.uniform(1.0, 3.0)
        cars += loudness / np.sqrt(1 + ((t - passing) / width) ** 2) * np.roll(tyres, int(rng.integers(length)))
    return (rumble * drift + 0.3 * _rms_normalised(hum) + cars).astype(np.float32)


@dataclass(frozen=True)
class NoisyClip:
    audio: np.ndarray
    kind: str


class UnseenNoise:
    """The evaluation's noise set over a folder's clips (`clips`: all of them, 16 kHz mono) and
    optional music tracks. Kinds without material (babble with one clip, music without
    tracks) are left out of the draw."""

    def __init__(self, clips: Sequence[np.ndarray], music: Sequence[np.ndarray] = (), rate: int = 16_000) -> None:
        self.clips = list(clips)
        self.music = [m for m in music if m.size]
        self.rate = rate
        self.kinds = (("babble",) if len(self.clips) > 1 else ()) + (("music",) if self.music else ()) + ("street",)

    def noise(self, clip_index: int, length: int, snr_db: float) -> tuple[np.ndarray, str]:
        """The noise for clip `clip_index` at this SNR, and its kind."""
        step = int(round(snr_db * 10))  # the draw follows the SNR's value (tenths of a dB), not its place in the list
        rng = np.random.default_rng([clip_index, step % 2**32])
        kind = self.kinds[(clip_index + round(snr_db / 5)) % len(self.kinds)]  # 0, 5, 10, 15 dB: each clip cycles through the kinds
        if kind == "babble":
            others = [i for i in range(len(self.clips)) if i != clip_index]
            talkers = rng.choice(others, size=min(BABBLE_TALKERS, len(others)), replace=False)
            return np.sum([_rms_normalised(_excerpt(self.clips[i], length, rng)) for i in talkers], axis=0), kind
        if kind == "music":
            return _excerpt(self.music[int(rng.integers(len(self.music)))], length, rng), kind
        return street_noise(length, rng, self.rate), kind

    def mix(self, clip_index: int, snr_db: float) -> NoisyClip:
        clean = self.clips[clip_index]
        noise, kind = self.noise(clip_index, clean.size, snr_db)
        return NoisyClip(mix_at_snr(clean, noise, snr_db), kind)
