"""The double-talk switch: it trusts the linear filter only after measuring it on echo alone,
picks the linear path when the near end talks, and ramps between the two outputs."""

from __future__ import annotations

import numpy as np

from transmitter.double_talk import LINEAR_TRUSTED_DB, MIX_STEP, DoubleTalkSwitch


def test_learns_the_linear_filter_on_echo_alone_then_switches_on_the_near_end():
    switch = DoubleTalkSwitch()
    mic = 1e-3
    # Echo alone: AEC3 50 dB down, the linear filter 20 dB down.
    assert not any(switch.update(mic, mic * 1e-2, mic * 1e-5, far_active=True) for _ in range(100))
    assert switch.linear_erle_db > LINEAR_TRUSTED_DB and switch.leak < 10 ** (-LINEAR_TRUSTED_DB / 10)
    # The near end talks: the linear filter's error near the microphone's, AEC3 gating it 10 dB down.
    both = [switch.update(2 * mic, mic, 2 * mic * 0.1, far_active=True) for _ in range(10)]
    assert all(both[3:])
    # The far end silent: AEC3's output.
    assert not switch.update(mic, mic, mic, far_active=False)


def test_untrusted_filter_is_never_used():
    switch = DoubleTalkSwitch()
    assert not any(switch.update(1e-3, 1e-3, 1e-4, far_active=True) for _ in range(50))


def test_mix_ramps_from_aec3_to_the_linear_path():
    switch = DoubleTalkSwitch()
    aec3, linear = np.zeros((2, 160), np.float32), np.ones((2, 160), np.float32)
    assert switch.mix(aec3, linear) is None  # AEC3's output as it is
    switch.linear_erle_db = 20.0
    switch._aec_slow = switch._mic_slow = 1.0
    assert switch.update(1.0, 1.0, 1.0, far_active=True)
    out = switch.mix(aec3, linear)
    assert out is not None and out.shape == aec3.shape
    assert out.reshape(-1)[0] == 0.0 and abs(out.reshape(-1)[-1] - MIX_STEP) < 1e-3  # a ramp, no jump
