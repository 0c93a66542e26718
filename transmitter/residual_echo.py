"""A mild residual echo suppressor after the linear echo filter: a per-bin gain driven by the
linear filter's own echo estimate, with a floor, so that the near end's speech is not gated
while both sides talk (AEC3's suppressor gates it, and cannot be tuned).

The echo the linear filter leaves is taken as a fixed fraction (`leak`, the filter's measured
residual: its echo reduction while the far end talks alone) of its echo estimate, bin by bin.
Each bin's gain is a spectral subtraction of that residual from the error, `1 - over * leak *
|echo|^2 / |error|^2`, clipped to [floor, 1]: bins the near end dominates keep their level,
bins of echo alone fall to the floor.

Short-time Fourier transform: 128-sample frames (8 ms at 16 kHz), hop 64, square-root Hann
windows for analysis and synthesis (their product overlaps to a constant); one codec frame's
hops are batched in one rfft / irfft. Latency: one hop (64 samples, 4 ms), which the front end
takes off the delay it gives the linear path to line it up with AEC3's.
"""

from __future__ import annotations

import numpy as np

FRAME = 128
HOP = 64
OVER_SUBTRACTION = 3.0  # the residual's estimate is rough: subtract it three times over
FLOOR_DB = -20.0  # the lowest gain: echo alone is suppressed this much beyond the linear filter, never gated
ERROR_SMOOTHING = 0.3  # of each bin's error power from one hop to the next (less musical noise)


class ResidualEchoSuppressor:
    """`process(error, echo, leak)` -> `error` with the residual echo suppressed, delayed by
    `latency` samples; `error` and `echo` are the linear filter's output and echo estimate for
    one block (a whole number of hops)."""

    latency = HOP

    def __init__(self, block: int, over_subtraction: float = OVER_SUBTRACTION, floor_db: float = FLOOR_DB) -> None:
        if block <= 0 or block % HOP:
            raise ValueError(f"the block ({block} samples) must be a positive multiple of {HOP}")
        self.block = block
        self.over_subtraction = over_subtraction
        self.floor = 10 ** (floor_db / 20)
        self._hops = block // HOP
        self._window = np.sqrt(0.5 - 0.5 * np.cos(2 * np.pi * np.arange(FRAME) / FRAME)).astype(np.float32)  # periodic
        self._error_in = np.zeros(HOP + block, np.float32)  # the last hop of the previous block, then this block
        self._echo_in = np.zeros(HOP + block, np.float32)
        self._overlap = np.zeros(HOP, np.float32)  # the last frame's second half, waiting for the next block
        self._error_power = np.zeros(FRAME // 2 + 1, np.float32)
        self.last_gain = np.ones(FRAME // 2 + 1, np.float32)  # the last hop's gains (tests, diagnostics)

    def _frames(self, signal: np.ndarray) -> np.ndarray:
        """[hops, FRAME] windowed frames of signal (HOP + block samples), a strided view then a product."""
        view = np.lib.stride_tricks.sliding_window_view(signal, FRAME)[::HOP]
        return view * self._window

    def process(self, error: np.ndarray, echo: np.ndarray, leak: float) -> np.ndarray:
        n = self.block
        self._error_in[:HOP] = self._error_in[n:]
        self._error_in[HOP:] = error
        self._echo_in[:HOP] = self._echo_in[n:]
        self._echo_in[HOP:] = echo
        err_spectra = np.fft.rfft(self._frames(self._error_in), axis=1)
        echo_spectra = np.fft.rfft(self._frames(self._echo_in), axis=1)
        err_power = err_spectra.real**2 + err_spectra.imag**2
        residual = (self.over_subtraction * leak) * (echo_spectra.real**2 + echo_spectra.imag**2)
        a = ERROR_SMOOTHING
        gains = np.empty(err_power.shape, np.float32)
        smoothed = self._error_power
        for h in range(self._hops):  # a recursion over the block's few hops (5 per 20 ms), vectors over bins
            smoothed = a * smoothed + (1 - a) * err_power[h]
            gains[h] = 1.0 - residual[h] / (smoothed + 1e-12)
        self._error_power = smoothed
        np.clip(gains, self.floor, 1.0, out=gains)
        self.last_gain = gains[-1]
        frames = np.fft.irfft(err_spectra * gains, FRAME, axis=1).astype(np.float32, copy=False) * self._window
        out = np.empty(n, np.float32)
        blocks = out.reshape(self._hops, HOP)
        blocks[:] = frames[:, :HOP]
        blocks[0] += self._overlap
        blocks[1:] += frames[:-1, HOP:]
        self._overlap[:] = frames[-1, HOP:]
        return out
