"""The echo's delay behind the far-end reference, estimated from the signals themselves
(GCC-PHAT), so that the linear echo filter's reference can be lined up with the microphone
whatever the devices reported and however the reference queue moved since.

Per codec frame `push(reference, microphone)` keeps both blocks, decimated by 4 (16 kHz ->
4 kHz: a mean of 4 samples, a cheap low-pass; speech's echo is mostly below 2 kHz), in a 2.5 s
history. Every INTERVAL_FRAMES frames (5 times a second) it cross-correlates the two histories
with the phase transform (the cross-spectrum divided by its magnitude, 100 Hz-1.8 kHz: every
band counts alike, so the peak is sharp for speech too) over lags from -1 s (the echo ahead
of the reference: the reference was delayed too much, or the capture lost audio) to +1 s (a
sound card's buffer refilled after an underrun plays what it was handed that much later), and takes the highest peak if
it stands out from the rest of the correlation (PEAK_RATIO). Silence on either side gives no
estimate. An estimate is reported as stable when the last AGREE ones were all confident and
within TOLERANCE_S of each other: one window of double talk or a pause does not move it.

Cost: per frame a reshape-mean and a copy into the history; per analysis two rffts and one
irfft of 16384 points (the 2.5 s history at 4 kHz and 1.6 s of zero padding) and elementwise work on them.
"""

from __future__ import annotations

import time
from dataclasses import dataclass

import numpy as np

DECIMATION = 4  # 16 kHz -> 4 kHz
HISTORY_S = 2.5  # the cross-correlated span of each signal
MIN_HISTORY_S = 1.0  # no estimate before this much history (after a start or a reset)
INTERVAL_FRAMES = 10  # an analysis every 10 codec frames (200 ms with 20 ms frames)
MAX_LAG_S = 1.0  # the echo at most this far behind the reference (a device buffer refilled after an underrun delays it)
MIN_LAG_S = -1.0  # and at most this far ahead of it (the reference delayed too much; the capture lost audio)
BAND_HZ = (100.0, 1800.0)  # the phase transform's band: above hum, below the decimation's roll-off
ACTIVE_DBFS = -50.0  # both histories at least this loud (mean power) for an estimate
PEAK_RATIO = 9.0  # the peak this many times the correlation's RMS over the lag range: confident (unrelated signals: up to about 7)
AGREE = 3  # this many confident estimates in a row ...
TOLERANCE_S = 0.002  # ... within this of each other: a stable estimate


@dataclass
class EchoDelayStats:
    analyses: int = 0  # cross-correlations computed
    confident: int = 0  # of which gave a confident estimate
    frames: int = 0  # blocks pushed
    cost_s: float = 0.0  # time spent in `push` (analyses included)

    @property
    def cost_ms_per_frame(self) -> float:
        return 1000 * self.cost_s / self.frames if self.frames else 0.0


class EchoDelayEstimator:
    """`push(reference, microphone)` per block (both `block` samples at `sample_rate`) -> the
    stable delay of the microphone's echo behind the reference in samples (negative: ahead)
    when an analysis this call confirmed it, else None. `reset()` after moving the reference."""

    def __init__(self, block: int, sample_rate: int = 16_000) -> None:
        if block <= 0 or block % DECIMATION:
            raise ValueError(f"block must be a positive multiple of {DECIMATION}")
        self.block = block
        self.sample_rate = sample_rate
        self.rate = sample_rate / DECIMATION
        self.stats = EchoDelayStats()
        self.last: int | None = None  # the last confident estimate (samples at `sample_rate`), None if the last analysis had none
        self.stable: int | None = None  # the last stable estimate
        self._size = int(HISTORY_S * self.rate)
        self._ref = np.zeros(self._size, np.float32)
        self._mic = np.zeros(self._size, np.float32)
        self._max_lag = int(MAX_LAG_S * self.rate)
        self._min_lag = int(MIN_LAG_S * self.rate)
        # Long enough that no lag in range wraps around into another (circular correlation).
        self._fft = 1 << int(np.ceil(np.log2(self._size + max(self._max_lag, -self._min_lag))))
        freqs = np.fft.rfftfreq(self._fft, 1 / self.rate)
        self._band = ((freqs >= BAND_HZ[0]) & (freqs <= BAND_HZ[1])).astype(np.float32)
        self._active = 10 ** (ACTIVE_DBFS / 10)
        self._tolerance = TOLERANCE_S * self.rate
        self._recent: list[int | None] = []
        self._filled = 0
        self._since = 0

    def reset(self) -> None:
        """Forget the history (the reference was moved: the old one no longer lines up)."""
        self._ref[:] = 0.0
        self._mic[:] = 0.0
        self._filled = self._since = 0
        self._recent.clear()
        self.last = self.stable = None

    def push(self, reference: np.ndarray, microphone: np.ndarray) -> int | None:
        started = time.perf_counter()
        k = self.block // DECIMATION
        for history, block in ((self._ref, reference), (self._mic, microphone)):
            history[:-k] = history[k:]
            history[-k:] = np.asarray(block, np.float32).reshape(k, DECIMATION).mean(axis=1)
        self._filled = min(self._size, self._filled + k)
        self._since += 1
        result = None
        if self._since >= INTERVAL_FRAMES and self._filled >= MIN_HISTORY_S * self.rate:
            self._since = 0
            result = self._analyse()
        self.stats.frames += 1
        self.stats.cost_s += time.perf_counter() - started
        return result

    def _analyse(self) -> int | None:
        self.stats.analyses += 1
        estimate = self._correlate()
        self.last = None if estimate is None else estimate * DECIMATION
        self.stats.confident += estimate is not None
        self._recent = [*self._recent[-(AGREE - 1) :], estimate]
        known = [e for e in self._recent if e is not None]
        if len(known) < AGREE or max(known) - min(known) > self._tolerance:
            return None
        self.stable = int(np.median(known)) * DECIMATION
        return self.stable

    def _correlate(self) -> int | None:
        """The lag (decimated samples) of the highest GCC-PHAT peak, if confident."""
        ref, mic = self._ref[-self._filled :], self._mic[-self._filled :]
        if float(np.mean(ref * ref)) < self._active or float(np.mean(mic * mic)) < self._active:
            return None
        r = np.fft.rfft(ref, self._fft)
        m = np.fft.rfft(mic, self._fft)
        cross = m * np.conj(r)
        cross *= self._band / (np.abs(cross) + 1e-12)
        c = np.fft.irfft(cross, self._fft)
        # Lags min_lag..max_lag: c[lag] = sum mic[i] ref[i - lag]; negative lags wrap to the end.
        lags = np.concatenate([c[self._fft + self._min_lag :], c[: self._max_lag + 1]])
        peak = int(np.argmax(lags))
        rms = float(np.sqrt(np.mean(lags * lags)))
        if lags[peak] < PEAK_RATIO * rms:
            return None
        return peak + self._min_lag
