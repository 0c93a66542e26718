"""Batch augmentation and noisy/clean pairs for training, all on tensors, seeded by a generator.

- `random_eq`: a smooth random gain curve (+-6 dB) applied in the frequency domain, as
  microphones and rooms colour speech;
- `band_limit`: a random low-pass (3.4 to 8 kHz), as when the source was narrow-band;
- `NoiseMixer`: coloured noise (spectral slope -6..+3 dB/octave), babble (other speakers
  from the training stream) and music, mixed at a random SNR: the denoise switch's inputs.
"""

from __future__ import annotations

import numpy as np
import torch


def _uniform(generator: torch.Generator, low: float, high: float, size: tuple[int, ...] = ()) -> torch.Tensor:
    return torch.rand(size, generator=generator) * (high - low) + low


def random_eq(x: torch.Tensor, generator: torch.Generator, max_db: float = 6.0, knots: int = 8) -> torch.Tensor:
    """Multiply each example's spectrum by a smooth random curve of +-max_db."""
    spec = torch.fft.rfft(x, dim=-1)
    bins = spec.shape[-1]
    gains_db = _uniform(generator, -max_db, max_db, (x.shape[0], 1, knots))
    curve = torch.nn.functional.interpolate(gains_db, size=bins, mode="linear", align_corners=True)[:, 0]
    return torch.fft.irfft(spec * 10 ** (curve / 20), n=x.shape[-1], dim=-1)


def band_limit(x: torch.Tensor, generator: torch.Generator, sample_rate: int, low_hz: float = 3400.0) -> torch.Tensor:
    """Low-pass each example at a random cut-off between low_hz and Nyquist (a 200 Hz ramp)."""
    spec = torch.fft.rfft(x, dim=-1)
    freqs = torch.linspace(0, sample_rate / 2, spec.shape[-1])
    cutoff = _uniform(generator, low_hz, sample_rate / 2, (x.shape[0], 1))
    mask = torch.clamp((cutoff - freqs) / 200.0, 0.0, 1.0)
    return torch.fft.irfft(spec * mask, n=x.shape[-1], dim=-1)


def coloured_noise(batch: int, length: int, generator: torch.Generator) -> torch.Tensor:
    """Gaussian noise whose spectrum falls or rises by a random slope (dB per octave)."""
    white = torch.randn(batch, length, generator=generator)
    spec = torch.fft.rfft(white, dim=-1)
    octaves = torch.log2(torch.arange(spec.shape[-1]).clamp(min=1).float())
    slope = _uniform(generator, -6.0, 3.0, (batch, 1))
    return torch.fft.irfft(spec * 10 ** (slope * octaves / 20), n=length, dim=-1)


def _rms(x: torch.Tensor) -> torch.Tensor:
    return x.pow(2).mean(-1, keepdim=True).sqrt().clamp(min=1e-6)


class NoiseMixer:
    """Adds a random kind of noise to each example at an SNR drawn from `snr_db`."""

    def __init__(self, speech: np.ndarray, music: np.ndarray | None, generator: torch.Generator, snr_db: tuple[float, float] = (0.0, 20.0)) -> None:
        self.speech = speech
        self.music = music if music is not None and music.size else None
        self.generator = generator
        self.snr_db = snr_db

    def _crops(self, pcm: np.ndarray, count: int, length: int) -> torch.Tensor:
        starts = torch.randint(0, pcm.size - length, (count,), generator=self.generator).tolist()
        return torch.from_numpy(np.stack([pcm[s : s + length] for s in starts]).astype(np.float32) / 32768.0)

    def noise(self, batch: int, length: int) -> torch.Tensor:
        kinds = torch.randint(0, 3 if self.music is not None else 2, (batch,), generator=self.generator)
        out = coloured_noise(batch, length, self.generator)
        babble = kinds == 1
        if babble.any():
            talkers = self._crops(self.speech, int(babble.sum()) * 4, length).view(-1, 4, length)
            out[babble] = (talkers / _rms(talkers)).sum(1)
        music = kinds == 2
        if music.any():
            assert self.music is not None  # kind 2 is drawn only when there is music
            out[music] = self._crops(self.music, int(music.sum()), length)
        return out

    def __call__(self, clean: torch.Tensor) -> torch.Tensor:
        """clean [B, S] -> clean + noise at a random SNR per example."""
        noise = self.noise(clean.shape[0], clean.shape[1])
        snr = _uniform(self.generator, *self.snr_db, (clean.shape[0], 1))
        scale = _rms(clean) / _rms(noise) * 10 ** (-snr / 20)
        return clean + noise * scale


def si_sdr(estimate: torch.Tensor, reference: torch.Tensor) -> torch.Tensor:
    """Scale-invariant SDR in dB per example."""
    reference = reference - reference.mean(-1, keepdim=True)
    estimate = estimate - estimate.mean(-1, keepdim=True)
    scale = (estimate * reference).sum(-1, keepdim=True) / (reference.pow(2).sum(-1, keepdim=True) + 1e-9)
    target = scale * reference
    return 10 * torch.log10(target.pow(2).sum(-1) / ((estimate - target).pow(2).sum(-1) + 1e-9) + 1e-9)
