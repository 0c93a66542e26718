"""The double-talk switch: per codec frame, AEC3's output or the linear path's (the linear
echo filter, the residual echo suppressor and the APM without the canceller), ramped.

Why: AEC3's suppressor gates the near end's speech while the far end plays, and cannot be
tuned. The linear path keeps the near end; AEC3 suppresses more echo when nobody else talks.

Both talk when the far end plays, the linear filter is trusted (it has removed at least
LINEAR_TRUSTED_DB while AEC3 heard echo alone), its error is well above the residual echo it
leaves, and AEC3's output is not very far below the microphone (it is, for echo alone, even
when the linear filter lags behind a changed echo path).
"""

from __future__ import annotations

import math

import numpy as np

LINEAR_TRUSTED_DB = 10.0  # the linear filter's echo reduction (measured while AEC3 hears echo alone) before it is used
AEC3_ECHO_ALONE_DB = 40.0  # AEC3's output this far below the microphone (~120 ms smoothed): echo alone, no near end
NEAR_END_MARGIN = 4.0  # the linear filter's error this many times above its expected residual echo: the near end talks
LINEAR_ERLE_MAX_DB = 40.0  # one frame's measured reduction counts at most this much (near-silent frames: no spikes)
LINEAR_MIC_FLOOR_DBFS = -60.0  # quieter microphone frames say nothing about the linear filter
MIX_STEP = 0.25  # per 20 ms frame: 80 ms from one output to the other


def step_towards(current: float, target: float, step: float) -> float:
    """`current` moved towards `target` by at most `step`."""
    return current + float(np.clip(target - current, -step, step))


def ramped_mix(to: np.ndarray, base: np.ndarray, start: float, end: float) -> np.ndarray:
    """`base + mix * (to - base)`, the mix a ramp from `start` to `end` within the frame (no clicks)."""
    ramp = np.linspace(start, end, to.size, endpoint=False, dtype=np.float32).reshape(to.shape)
    return base + ramp * (to - base)


class DoubleTalkSwitch:
    """`update(...)` once per frame with the frame's powers -> whether both talk; `mix(aec3,
    linear)` then gives what to send (None: AEC3's output as it is)."""

    def __init__(self) -> None:
        self.linear_erle_db = 0.0  # the linear filter's echo reduction while AEC3 hears echo alone (dB, smoothed)
        self._mic_fast = self._linear_fast = self._mic_slow = self._aec_slow = 0.0
        self._mix = 1.0  # 1: AEC3's output; 0: the linear path's (both talking)
        self._target = 1.0

    @property
    def leak(self) -> float:
        """The power fraction of the echo the linear filter leaves (its measured reduction)."""
        return 10 ** (-self.linear_erle_db / 10)

    def distrust(self) -> None:
        """The linear filter started over (its echo path or alignment moved): measure it afresh."""
        self.linear_erle_db = 0.0

    def update(self, mic_power: float, linear_power: float, aec3_power: float, far_active: bool) -> bool:
        self._mic_fast = 0.5 * self._mic_fast + 0.5 * mic_power
        self._linear_fast = 0.5 * self._linear_fast + 0.5 * linear_power
        self._mic_slow = 0.85 * self._mic_slow + 0.15 * mic_power
        self._aec_slow = 0.85 * self._aec_slow + 0.15 * aec3_power
        echo_alone = self._aec_slow < self._mic_slow * 10 ** (-AEC3_ECHO_ALONE_DB / 10)
        trusted = self.linear_erle_db >= LINEAR_TRUSTED_DB
        residual = self._mic_fast * self.leak
        both = far_active and trusted and not echo_alone and self._linear_fast > NEAR_END_MARGIN * residual
        if far_active and echo_alone and not both and mic_power > 10 ** (LINEAR_MIC_FLOOR_DBFS / 10):
            # In dB, each frame clamped; up quickly, down slowly: AEC3 gates the near end so hard
            # that a frame of double talk can pass for echo alone, and it must not make the
            # filter look worse than it is.
            measured = min(LINEAR_ERLE_MAX_DB, 10 * math.log10(mic_power / (linear_power + 1e-20)))
            rate = 0.1 if measured > self.linear_erle_db else 0.03
            self.linear_erle_db += rate * (measured - self.linear_erle_db)
        self._target = 0.0 if both else 1.0
        return both

    def mix(self, aec3_out: np.ndarray, linear_out: np.ndarray) -> np.ndarray | None:
        """AEC3's output and the linear path's (same shape, lined up), mixed towards the last
        `update`'s choice by at most MIX_STEP, a ramp within the frame (no clicks); None while
        AEC3's output is sent as it is."""
        mix = step_towards(self._mix, self._target, MIX_STEP)
        if mix == self._mix == 1.0:
            return None
        start, self._mix = self._mix, mix
        return ramped_mix(aec3_out, linear_out, start, mix)
