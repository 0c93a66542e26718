"""The echo leak guard: while the far end plays, each frame sends the quieter of AEC3's output
and the linear path's (the linear echo filter, the residual echo suppressor and the APM without
the canceller, lined up with AEC3's output), so that AEC3's bursts of echo do not go out.

Why: in a long room (300 ms on the benchmark) AEC3's own linear filter spans about 50 ms; the
rest of the echo is left to its suppressor, which, in its first seconds, now and then lets
40-160 ms of echo through almost whole (0.6-6.6 dB removed in those frames, far more around
them: `python -m bench.echo --json --no-leak-guard`, `leaks` of the 300 ms rows), which one
0.5 s window at 15-20 dB shows. Our linear filter spans the room and, with the residual echo
suppressor, has removed more than that by then. Sending, frame by frame, whichever output
is quieter is the safeguard AEC3 itself applies between its two linear filters: the linear path
goes out only where it removed more, it never feeds AEC3 (which, fed it, leaves more echo on
real devices: docs/frontend.md). Where AEC3 removes more (its converged state, and real devices,
where it removes 40-60 dB against the linear filter's 11-18 dB) AEC3's output goes out as before.

Where both talk the quieter output is AEC3's (it gates the near end): the guard is not asked
there (the double-talk switch decides), nor while the far end is silent (nothing to remove).
A change of output is cross-faded over the first RAMP_S of the frame (no clicks).
"""

from __future__ import annotations

import numpy as np

RAMP_S = 0.0025  # a change of output is cross-faded over this much of the frame's start
MARGIN_DB = 1.0  # the linear path this much quieter than AEC3's output before it is chosen (no flicker on ties)


class EchoLeakGuard:
    """`choose(aec3_out, linear_out, allowed)` per frame (same shape, lined up) -> what to send:
    AEC3's output, or the linear path's when `allowed` and it is the quieter by MARGIN_DB."""

    def __init__(self, sample_rate: int = 16_000, margin_db: float = MARGIN_DB) -> None:
        self.ramp = max(1, round(RAMP_S * sample_rate))
        self.ratio = 10 ** (-margin_db / 10)
        self._mix = 0.0  # 0: AEC3's output; 1: the linear path's
        self.chosen_frames = 0  # frames sent (wholly or partly) from the linear path

    def choose(self, aec3_out: np.ndarray, linear_out: np.ndarray, allowed: bool) -> np.ndarray:
        target = 0.0
        if allowed:
            aec3_power = float(np.mean(np.square(aec3_out, dtype=np.float64)))
            linear_power = float(np.mean(np.square(linear_out, dtype=np.float64)))
            target = 1.0 if linear_power < self.ratio * aec3_power else 0.0
        start, self._mix = self._mix, target
        if start == target == 0.0:
            return aec3_out
        self.chosen_frames += 1
        if start == target:
            return linear_out
        flat_aec3, flat_linear = aec3_out.reshape(-1), linear_out.reshape(-1)
        out = (flat_linear if target else flat_aec3).copy()
        n = min(self.ramp, out.size)
        mix = np.linspace(start, target, n, endpoint=False, dtype=np.float32)
        out[:n] = flat_aec3[:n] + mix * (flat_linear[:n] - flat_aec3[:n])
        return out.reshape(aec3_out.shape)
