"""The echo delay estimator (GCC-PHAT between the far-end reference and the microphone): a
known delay is found within a few ms, a jump in it is found again, and silence or an
uncorrelated microphone moves nothing."""

from __future__ import annotations

import numpy as np
import pytest
from scipy.signal import lfilter

from transmitter.echo_delay import EchoDelayEstimator

RATE = 16_000
BLOCK = 320


def _speechlike(seconds: float, seed: int) -> np.ndarray:
    """Coloured noise under a syllable envelope with pauses (as speech is: not white, not steady)."""
    rng = np.random.default_rng(seed)
    n = int(seconds * RATE) // BLOCK * BLOCK
    t = np.arange(n) / RATE
    envelope = np.clip(np.sin(2 * np.pi * 3.0 * t), 0, None) ** 2 * (0.6 + 0.4 * np.sin(2 * np.pi * 0.37 * t))
    x = lfilter([1.0], [1.0, -0.9], rng.standard_normal(n)) * envelope
    return (0.3 * x / np.abs(x).max()).astype(np.float32)


def _room(delay: int, seed: int) -> np.ndarray:
    rng = np.random.default_rng(seed)
    tail = rng.standard_normal(1600) * np.exp(-6.9 * np.arange(1600) / 1600)  # 100 ms
    tail[0] = 3.0
    return np.concatenate([np.zeros(delay), 0.5 * tail / np.sqrt(np.sum(tail**2))])


def _run(est: EchoDelayEstimator, reference: np.ndarray, mic: np.ndarray) -> list[tuple[float, int]]:
    """(time s, stable estimate) for each block that reported one."""
    out = []
    for i in range(0, mic.size, BLOCK):
        lag = est.push(reference[i : i + BLOCK], mic[i : i + BLOCK])
        if lag is not None:
            out.append(((i + BLOCK) / RATE, lag))
    return out


@pytest.mark.parametrize("delay_ms", [5, 47, 180, 420])
def test_finds_a_known_delay_through_a_room_and_near_end_speech(delay_ms: int):
    far = _speechlike(6.0, 0)
    echo = np.convolve(np.tanh(far), _room(delay_ms * RATE // 1000, 1))[: far.size]
    near = 0.5 * _speechlike(6.0, 2)  # the near end talks over it throughout, about as loud
    rng = np.random.default_rng(3)
    mic = (echo + near + 1e-3 * rng.standard_normal(far.size)).astype(np.float32)
    est = EchoDelayEstimator(BLOCK, RATE)
    found = _run(est, far, mic)
    assert found, est.stats
    assert found[0][0] < 2.0  # within 2 s
    assert all(abs(lag - delay_ms * RATE / 1000) <= 3 * RATE / 1000 for _, lag in found), found  # within 3 ms


def test_an_echo_ahead_of_the_reference_is_a_negative_delay():
    far = _speechlike(5.0, 4)
    mic = np.concatenate([far[1600:], np.zeros(1600, np.float32)]) * 0.5  # 100 ms ahead
    found = _run(EchoDelayEstimator(BLOCK, RATE), far, mic)
    assert found and all(abs(lag + 1600) <= 48 for _, lag in found), found


def test_a_jump_in_the_delay_is_estimated_again():
    far = _speechlike(10.0, 5)
    before = np.convolve(far, _room(960, 6))[: far.size]  # 60 ms
    after = np.convolve(far, _room(960 + 1600, 6))[: far.size]  # 160 ms: the capture lost 100 ms
    jump = 4 * RATE
    mic = np.concatenate([before[:jump], after[jump:]]).astype(np.float32)
    found = _run(EchoDelayEstimator(BLOCK, RATE), far, mic)
    early = [lag for t, lag in found if t <= jump / RATE]
    late = [lag for t, lag in found if t > jump / RATE + 3.0]  # re-estimated within 3 s
    assert early and all(abs(lag - 960) <= 48 for lag in early), found
    assert late and all(abs(lag - 2560) <= 48 for lag in late), found


def test_silence_or_no_echo_gives_no_estimate():
    rng = np.random.default_rng(7)
    n = 6 * RATE
    far = _speechlike(6.0, 8)
    for reference, mic in (
        (np.zeros(n, np.float32), (0.05 * rng.standard_normal(n)).astype(np.float32)),  # no far end
        (far, np.zeros(n, np.float32)),  # a muted microphone
        (far, _speechlike(6.0, 9)),  # the near end alone, no echo
        (1e-4 * far, 1e-4 * far),  # both far below -50 dBFS
    ):
        est = EchoDelayEstimator(BLOCK, RATE)
        assert _run(est, reference, mic) == []
        assert est.stable is None


def test_reset_forgets_and_bad_blocks_are_refused():
    far = _speechlike(3.0, 10)
    est = EchoDelayEstimator(BLOCK, RATE)
    assert _run(est, far, far)
    est.reset()
    assert est.stable is None and est.last is None
    assert est.push(far[:BLOCK], far[:BLOCK]) is None  # a second of history again before the next one
    assert est.stats.cost_ms_per_frame > 0
    with pytest.raises(ValueError):
        EchoDelayEstimator(322)
