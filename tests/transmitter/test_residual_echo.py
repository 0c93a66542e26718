"""The residual echo suppressor after the linear filter: transparent (one hop late) without
echo, down to its floor on echo alone, and the near end's bins kept while both talk."""

from __future__ import annotations

import numpy as np
import pytest

from transmitter.residual_echo import ResidualEchoSuppressor


def _run(res: ResidualEchoSuppressor, error: np.ndarray, echo: np.ndarray, leak: float) -> np.ndarray:
    return np.concatenate([res.process(error[i : i + 320], echo[i : i + 320], leak) for i in range(0, error.size, 320)])


def test_without_echo_it_is_a_delay_of_one_hop():
    x = np.random.default_rng(0).standard_normal(3200).astype(np.float32)
    res = ResidualEchoSuppressor(320)
    out = _run(res, x, np.zeros_like(x), 0.01)
    np.testing.assert_allclose(out[res.latency :], x[: -res.latency], atol=1e-5)


def test_echo_alone_falls_to_the_floor_and_the_near_end_stays():
    n = 16_000
    t = np.arange(n) / 16_000
    echo_estimate = (0.1 * np.sin(2 * np.pi * 1000 * t)).astype(np.float32)  # the far end at 1 kHz
    residual = 0.1 * echo_estimate  # what the linear filter left: -20 dB
    res = ResidualEchoSuppressor(320, floor_db=-20.0)
    out = _run(res, residual, echo_estimate, leak=0.01)
    assert 10 * np.log10(np.mean(out[4000:] ** 2) / np.mean(residual[4000:] ** 2)) < -15
    near = (0.05 * np.sin(2 * np.pi * 3000 * t)).astype(np.float32)  # the near end at 3 kHz, louder than the residual
    res = ResidualEchoSuppressor(320, floor_db=-20.0)
    out = _run(res, residual + near, echo_estimate, leak=0.01)
    lag = res.latency
    kept = np.dot(out[4000 + lag :], near[4000 : n - lag]) / np.dot(near[4000 : n - lag], near[4000 : n - lag])
    assert kept > 0.9, kept


def test_rejects_blocks_that_are_not_whole_hops():
    with pytest.raises(ValueError):
        ResidualEchoSuppressor(100)
