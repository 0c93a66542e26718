"""The denoise evaluation's noise: at the SNR asked for, reproducible, and never the scored clip."""

from __future__ import annotations

import numpy as np
import pytest

from codec.train.unseen_noise import UnseenNoise, mix_at_snr, street_noise

RATE = 16_000


def tone(hz: float, seconds: float = 1.0) -> np.ndarray:
    return (0.1 * np.sin(2 * np.pi * hz * np.arange(int(RATE * seconds)) / RATE)).astype(np.float32)


def noise_set() -> UnseenNoise:
    clips = [tone(hz) for hz in (300.0, 700.0, 1100.0, 1900.0)]
    return UnseenNoise(clips, music=[tone(440.0, 2.5) + tone(660.0, 2.5)])


def snr_of(clean: np.ndarray, noisy: np.ndarray) -> float:
    return float(10 * np.log10(np.sum(clean.astype(np.float64) ** 2) / np.sum((noisy - clean).astype(np.float64) ** 2)))


@pytest.mark.parametrize("snr", [0.0, 5.0, 10.0, 15.0, 7.5])
def test_every_kind_is_mixed_at_the_snr_asked_for(snr: float) -> None:
    noise = noise_set()
    kinds = set()
    for i, clean in enumerate(noise.clips):
        mixed = noise.mix(i, snr)
        kinds.add(mixed.kind)
        assert mixed.audio.shape == clean.shape and mixed.audio.dtype == np.float32
        assert snr_of(clean, mixed.audio) == pytest.approx(snr, abs=0.01)
    assert kinds == {"babble", "music", "street"}  # four clips cycle through the three kinds


def test_the_same_clip_and_snr_give_the_same_noise_and_others_differ() -> None:
    first, again = noise_set(), noise_set()
    a = first.mix(1, 5.0).audio
    assert np.array_equal(a, again.mix(1, 5.0).audio)
    assert not np.array_equal(a, first.mix(1, 10.0).audio)
    assert not np.array_equal(first.mix(0, 5.0).audio - first.clips[0], first.mix(3, 5.0).audio - first.clips[3])


def test_babble_never_holds_the_clip_it_is_mixed_into() -> None:
    noise = noise_set()
    bins = np.fft.rfftfreq(RATE, 1 / RATE)
    checked = 0
    for i, clean in enumerate(noise.clips):
        for snr in (0.0, 5.0, 10.0):
            babble, kind = noise.noise(i, clean.size, snr)
            if kind != "babble":
                continue
            spectrum = np.abs(np.fft.rfft(babble))
            own = spectrum[np.argmin(np.abs(bins - [300.0, 700.0, 1100.0, 1900.0][i]))]
            assert own < 1e-3 * spectrum.max()  # the other clips' tones only
            checked += 1
    assert checked >= 3


def test_kinds_without_material_are_left_out() -> None:
    assert UnseenNoise([tone(300.0)]).kinds == ("street",)
    assert UnseenNoise([tone(300.0), tone(500.0)]).kinds == ("babble", "street")


def test_street_noise_is_low_heavy_and_swells() -> None:
    noise = street_noise(RATE * 6, np.random.default_rng(0))
    power = np.abs(np.fft.rfft(noise.astype(np.float64))) ** 2
    freqs = np.fft.rfftfreq(noise.size, 1 / RATE)
    assert power[freqs < 1000].sum() > 0.6 * power.sum()
    quarter = np.sqrt(np.mean(noise[: noise.size // 4000 * 4000].reshape(-1, 4000) ** 2, axis=1))  # 250 ms levels
    assert quarter.max() > 1.5 * quarter.min()  # not stationary, as the training's coloured noise is
    assert np.array_equal(noise, street_noise(RATE * 6, np.random.default_rng(0)))


def test_mix_at_snr_on_silence_does_not_divide_by_zero() -> None:
    silent = np.zeros(100, np.float32)
    assert np.all(np.isfinite(mix_at_snr(silent, np.ones(100, np.float32), 5.0)))
