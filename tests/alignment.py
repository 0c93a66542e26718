"""Line a call's received audio up with what was sent, frame by frame.

A call's playout may skip a frame to win delay back or conceal one that came late, so the
received signal's lag against the reference moves by whole frames during a call. One lag for
the whole file would misalign everything after the first skip (PESQ-WB falls by 0.3-0.5 for a
single skipped frame of a good codec). Here each frame takes the lag, among the previous one
plus or minus a few whole frames, that matches the reference best; a quiet frame, which any
lag matches, keeps the previous lag.
"""

from __future__ import annotations

import numpy as np


def align_framewise(
    received: np.ndarray, reference: np.ndarray, frame: int = 320, max_start_lag: int = 16000, max_jump: int = 3
) -> tuple[np.ndarray, list[int]]:
    """`received` cut and shifted to `reference`'s length, one frame at a time, and the indices
    of the reference's frames that were never played (skipped for delay): where the lag falls by
    k frames at frame t, frames t - k .. t - 1 were copied under the old lag and hold other audio."""
    n = min(reference.size, 32000)
    first = [float(np.dot(received[lag : lag + n], reference[:n])) for lag in range(0, max(1, min(max_start_lag, received.size - n)), 40)]
    lag = 40 * int(np.argmax(first))
    out = np.zeros_like(reference)
    unplayed: list[int] = []
    for start in range(0, reference.size, frame):
        ref = reference[start : start + frame]
        errors = {}
        for k in range(-max_jump, max_jump + 1):
            c = lag + k * frame
            seg = received[start + c : start + c + ref.size] if start + c >= 0 else np.zeros(0)
            if seg.size == ref.size:
                errors[c] = float(np.sum((seg - ref) ** 2))
        if errors:
            best = min(errors, key=errors.get)
            # Move only for a clear win: a quiet frame matches every lag about as well.
            if lag not in errors or errors[best] < 0.25 * errors[lag]:
                t = start // frame
                unplayed += range(max(0, t - (lag - best) // frame), t) if best < lag else []
                lag = best
        seg = received[max(0, start + lag) : start + lag + ref.size]
        out[start : start + seg.size] = seg
    return out, unplayed


def played_only(unplayed: list[int], frame: int, *signals: np.ndarray) -> list[np.ndarray]:
    """Each signal without the frames in `unplayed` (to score what was played against the same)."""
    keep = np.ones(signals[0].size, dtype=bool)
    for t in unplayed:
        keep[t * frame : (t + 1) * frame] = False
    return [s[: keep.size][keep[: s.size]] for s in signals]
