"""The echo leak guard: AEC3's output unless allowed and the linear path is the quieter,
the change cross-faded at the frame's start, no flicker on near ties."""

from __future__ import annotations

import numpy as np
import pytest

from transmitter.echo_leak_guard import EchoLeakGuard


def _frames(seed: int, level: float) -> np.ndarray:
    return (level * np.random.default_rng(seed).standard_normal((2, 160))).astype(np.float32)


def test_not_allowed_or_louder_keeps_aec3s_output():
    guard = EchoLeakGuard()
    aec3, quiet, loud = _frames(0, 0.1), _frames(1, 0.001), _frames(2, 0.5)
    assert guard.choose(aec3, quiet, allowed=False) is aec3  # both talking, or the far end silent
    assert guard.choose(aec3, loud, allowed=True) is aec3  # the linear path removed less
    assert guard.choose(aec3, 0.95 * aec3, allowed=True) is aec3  # quieter, but by less than the margin
    assert guard.chosen_frames == 0


def test_a_leaking_aec3_is_replaced_by_the_quieter_linear_path_with_a_cross_fade():
    guard = EchoLeakGuard(16_000)
    aec3, quiet = _frames(0, 0.1), _frames(1, 0.001)
    first = guard.choose(aec3, quiet, allowed=True).reshape(-1)
    # The change starts at AEC3's output (no click), reaches the linear path's within the ramp.
    assert first[0] == aec3.reshape(-1)[0]
    np.testing.assert_array_equal(first[guard.ramp :], quiet.reshape(-1)[guard.ramp :])
    np.testing.assert_array_equal(guard.choose(aec3, quiet, allowed=True), quiet)  # held while it is quieter
    back = guard.choose(aec3, quiet, allowed=False).reshape(-1)  # both talk: AEC3's output again (the switch's say)
    assert back[0] == pytest.approx(quiet.reshape(-1)[0], rel=1e-5)
    np.testing.assert_array_equal(back[guard.ramp :], aec3.reshape(-1)[guard.ramp :])
    assert guard.choose(aec3, quiet, allowed=False) is aec3
    assert guard.chosen_frames == 3
