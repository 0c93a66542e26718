"""The linear echo filter ahead of AEC3: it converges on an echo and keeps its estimate while
the near end talks (the foreground filter does not follow the background's drift)."""

from __future__ import annotations

import numpy as np
import pytest

from transmitter.linear_echo import LinearEchoFilter


def _run(filt: LinearEchoFilter, far: np.ndarray, mic: np.ndarray) -> np.ndarray:
    out = np.empty_like(mic)
    for i in range(0, mic.size, filt.block):
        out[i : i + filt.block] = filt.process(far[i : i + filt.block], mic[i : i + filt.block])
    return out


def test_converges_and_holds_through_double_talk():
    rng = np.random.default_rng(0)
    n = 16_000 * 4 // 320 * 320
    far = (0.1 * rng.standard_normal(n)).astype(np.float32)
    room = rng.standard_normal(400) * np.exp(-np.arange(400) / 80.0)
    room[0] = 2.0
    path = np.concatenate([np.zeros(200), room / np.sqrt(np.sum(room**2)) * 0.5])  # 12.5 ms, 25 ms room
    echo = np.convolve(far, path)[:n].astype(np.float32)
    near = np.zeros(n, np.float32)
    near[3 * 16_000 :] = (0.1 * rng.standard_normal(n - 3 * 16_000)).astype(np.float32)  # both talk from 3 s on
    filt = LinearEchoFilter(320, 4)
    out = _run(filt, far, echo + near)
    alone = slice(int(2.5 * 16_000), 3 * 16_000)
    assert 10 * np.log10(np.mean(echo[alone] ** 2) / np.mean(out[alone] ** 2)) > 25
    both = slice(int(3.5 * 16_000), n)
    left = out[both] - near[both]  # the echo left while both talk
    assert 10 * np.log10(np.mean(echo[both] ** 2) / np.mean(left**2)) > 20
    assert filt.stats.copies > 0


def test_rejects_bad_sizes():
    with pytest.raises(ValueError):
        LinearEchoFilter(0, 4)
    with pytest.raises(ValueError):
        LinearEchoFilter(320, 4, step=1.5)
