"""The linear echo filter ahead of AEC3 (a frequency-domain Kalman filter): it converges on an
echo within seconds and keeps its estimate while the near end talks."""

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
    early = slice(int(1.5 * 16_000), 2 * 16_000)  # well on its way within 2 s
    assert 10 * np.log10(np.mean(echo[early] ** 2) / np.mean(out[early] ** 2)) > 15
    alone = slice(int(2.5 * 16_000), 3 * 16_000)
    assert 10 * np.log10(np.mean(echo[alone] ** 2) / np.mean(out[alone] ** 2)) > 25
    assert np.abs(filt.last_echo).max() > 0
    both = slice(int(3.5 * 16_000), n)
    left = out[both] - near[both]  # the echo left while both talk
    assert 10 * np.log10(np.mean(echo[both] ** 2) / np.mean(left**2)) > 20
    assert filt.stats.copies > 0


def test_rejects_bad_sizes():
    with pytest.raises(ValueError):
        LinearEchoFilter(0, 4)
    with pytest.raises(ValueError):
        LinearEchoFilter(320, 4, transition=1.0)


def test_starts_over_when_the_echo_moves():
    """The echo jumps 60 ms later (the capture lost samples): the converged filter now adds
    echo; it passes the microphone through (a restart) and learns the new path."""
    rng = np.random.default_rng(1)
    n = 16_000 * 6 // 320 * 320
    far = (0.1 * rng.standard_normal(n)).astype(np.float32)
    room = rng.standard_normal(400) * np.exp(-np.arange(400) / 80.0)
    room[0] = 2.0
    room *= 0.5 / np.sqrt(np.sum(room**2))
    moved = 3 * 16_000
    echo = np.empty(n, np.float32)
    echo[:moved] = np.convolve(far, np.concatenate([np.zeros(200), room]))[:moved]
    echo[moved:] = np.convolve(far, np.concatenate([np.zeros(1160), room]))[moved:n]
    filt = LinearEchoFilter(320, 8)
    out = _run(filt, far, echo)
    assert filt.stats.restarts >= 1
    after = slice(moved + 16_000, moved + int(1.5 * 16_000))  # within a second of the jump: no worse than the microphone
    assert np.mean(out[after] ** 2) < np.mean(echo[after] ** 2)
    end = slice(n - 16_000 // 2, n)
    assert 10 * np.log10(np.mean(echo[end] ** 2) / np.mean(out[end] ** 2)) > 15
