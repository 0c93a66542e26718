"""Line up audio that went through a browser with what was sent, block by block, to the sample.

A call's playout skips and stretches whole frames (tests/alignment.py follows those), but in
headless Chromium on a loaded machine the fake microphone and the audio render thread also
drop or repeat a few milliseconds here and there (lags that move by 270 samples, not by a
frame). Here each 20 ms block of the reference takes the lag, within `search` samples of the
previous block's, whose normalised correlation is best; a quiet block, or one no lag matches
clearly better, keeps the previous lag. What this scores is the codec and the call path, not
the timing glitches, which the test counts separately (`moves`).
"""

from __future__ import annotations

import numpy as np


def global_lag(received: np.ndarray, reference: np.ndarray) -> int:
    """The lag (>= 0) at which `reference` best matches `received`, over the whole signal."""
    n = 1 << int(np.ceil(np.log2(received.size + reference.size)))
    c = np.fft.irfft(np.fft.rfft(received, n) * np.conj(np.fft.rfft(reference, n)), n)[: max(1, received.size - reference.size // 2)]
    return int(np.argmax(c))


def realign(received: np.ndarray, reference: np.ndarray, block: int = 320, search: int = 6400) -> tuple[np.ndarray, int]:
    """`received` cut to `reference`'s length, each block at its own lag, and how often the lag moved."""
    received = np.concatenate([np.zeros(search, np.float32), received.astype(np.float32), np.zeros(search + reference.size, np.float32)])
    lag = global_lag(received, reference)
    out = np.zeros_like(reference, dtype=np.float32)
    quiet = 1e-3 * float(np.mean(reference**2)) * block
    moves = 0
    for start in range(0, reference.size - block + 1, block):
        ref = reference[start : start + block]
        lo = max(0, start + lag - search)
        window = received[lo : start + lag + search + block]
        if float(ref @ ref) > quiet and window.size >= block:
            corr = np.correlate(window, ref, "valid")
            energy = np.convolve(window**2, np.ones(block), "valid") + 1e-9
            score = corr / np.sqrt(energy * float(ref @ ref))
            here = start + lag - lo
            best = int(np.argmax(score))
            if here >= score.size or score[best] > score[here] + 0.1:
                moves += best + lo - start != lag
                lag = best + lo - start
        out[start : start + block] = received[start + lag : start + lag + block]
    tail = reference.size - reference.size % block
    out[tail:] = received[tail + lag : reference.size + lag]
    return out, moves
