"""The spectral-gap diagnosis: identity hybrids are the input, noise shows as lost contrast."""

from __future__ import annotations

import numpy as np
import torch

from bench.spectral_gap import HYBRIDS, band_profile, hybrids

RATE = 16000


def _harmonic(seconds: float = 1.0, f0: float = 140.0) -> torch.Tensor:
    t = np.arange(int(RATE * seconds)) / RATE
    x = sum(np.sin(2 * np.pi * f0 * h * t) / h for h in range(1, 40) if f0 * h < RATE / 2)
    return torch.from_numpy((0.1 * x).astype(np.float32))


def test_hybrids_of_a_signal_with_itself_are_the_signal() -> None:
    x = _harmonic()
    for name, signal in hybrids(x, x.clone()).items():
        assert name in HYBRIDS and signal.shape == x.shape
        assert np.abs(signal[1000:-1000] - x.numpy()[1000:-1000]).max() < 1e-4, name


def test_swapping_in_the_input_phase_repairs_a_delayed_output() -> None:
    x = _harmonic()
    y = torch.roll(x, 37)  # same magnitudes, every partial's phase moved
    err = {name: np.abs(s - x.numpy())[1000:-1000].mean() for name, s in hybrids(x, y).items()}
    assert err["decoded magnitude, input phase"] < 0.1 * err["input magnitude, decoded phase"]
    assert err["input magnitude, decoded phase"] > 0.5 * err["decoded"]


def test_added_noise_lowers_contrast_and_raises_level_where_it_lies() -> None:
    x = _harmonic()
    noise = torch.randn(len(x), generator=torch.Generator().manual_seed(1)) * 0.02
    bias, contrast_in, contrast_out = band_profile(x, x + noise, RATE)
    same_bias, same_in, same_out = band_profile(x, x.clone(), RATE)
    assert np.abs(same_bias).max() < 1e-3 and np.allclose(same_in, same_out)
    assert contrast_out.mean() < 0.8 * contrast_in.mean()
    assert bias.mean() > 1.0
