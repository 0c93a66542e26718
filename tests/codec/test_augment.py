"""Augmentation and noise mixing do what their parameters say."""

from __future__ import annotations

import numpy as np
import torch

from codec.train.augment import NoiseMixer, band_limit, coloured_noise, random_eq, si_sdr


def _speechlike(batch: int, length: int, seed: int = 0) -> torch.Tensor:
    g = torch.Generator().manual_seed(seed)
    t = torch.arange(length) / 16_000
    f0 = 100 + 100 * torch.rand(batch, 1, generator=g)
    return sum(torch.sin(2 * torch.pi * k * f0 * t) / k for k in range(1, 20)) * 0.05


def test_random_eq_stays_within_its_range() -> None:
    x = torch.randn(4, 16_000, generator=torch.Generator().manual_seed(0))
    y = random_eq(x, torch.Generator().manual_seed(1), max_db=6.0)
    ratio_db = 20 * torch.log10(torch.fft.rfft(y).abs() / torch.fft.rfft(x).abs())
    assert ratio_db.abs().max() <= 6.0 + 1e-3
    assert ratio_db.abs().mean() > 0.5


def test_band_limit_removes_energy_above_the_cutoff() -> None:
    x = torch.randn(8, 16_000, generator=torch.Generator().manual_seed(0))
    y = band_limit(x, torch.Generator().manual_seed(2), 16_000, low_hz=3400.0)
    spec_x, spec_y = torch.fft.rfft(x).abs(), torch.fft.rfft(y).abs()
    top = slice(int(7900 / 8000 * spec_x.shape[-1]), None)
    assert (spec_y[:, top].pow(2).sum(-1) < spec_x[:, top].pow(2).sum(-1)).any()
    assert torch.all(spec_y <= spec_x + 1e-3)


def test_noise_mixer_hits_the_requested_snr() -> None:
    g = torch.Generator().manual_seed(3)
    speech = (np.random.default_rng(0).standard_normal(16_000 * 5) * 3000).astype(np.int16)
    music = (np.random.default_rng(1).standard_normal(16_000 * 5) * 3000).astype(np.int16)
    mixer = NoiseMixer(speech, music, g, snr_db=(10.0, 10.0))
    clean = _speechlike(12, 8000)
    noisy = mixer(clean)
    snr = 10 * torch.log10(clean.pow(2).sum(-1) / (noisy - clean).pow(2).sum(-1))
    assert torch.allclose(snr, torch.full_like(snr, 10.0), atol=1e-3)
    assert si_sdr(noisy, clean).mean() < si_sdr(clean, clean).mean()


def test_coloured_noise_slopes_differ() -> None:
    n = coloured_noise(64, 16_000, torch.Generator().manual_seed(4))
    spec = torch.fft.rfft(n).abs().pow(2)
    low, high = spec[:, 100:1000].mean(-1), spec[:, 4000:7000].mean(-1)
    tilt = 10 * torch.log10(high / low)
    assert tilt.min() < -5 and tilt.max() > 0
