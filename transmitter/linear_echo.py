"""A linear echo canceller for double talk: a partitioned-block frequency-domain adaptive filter
(PBFDAF, overlap-save, one block per codec frame) in numpy, with two copies of the filter.

Why it exists: AEC3's residual echo suppressor (WebRTC's APM; neither `livekit` nor
`aec-audio-processing` exposes its configuration) attenuates and gates the near end's speech
whenever both sides talk, even when its own linear filter has removed the echo. The front end
therefore switches to this filter's output while both talk (docs/frontend.md has the numbers).

Two copies, as in Speex's MDF: the background filter adapts on every block (normalised LMS per
frequency bin); the foreground filter, whose output is used, takes the background's weights
only when the background has removed clearly more than it for a while. Near-end speech makes
the background drift (its error is not echo); the foreground does not follow it, and the
background is put back to the foreground when it has drifted far (double talk, not a better
echo path).

Cost: one rfft of the reference, two batched products over the partitions, one irfft per
filter, and the gradient's constraint (a batched irfft/rfft over the partitions) per block.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

COPY_RATIO = 0.7  # the background's error power below this fraction of the foreground's: copy it
RESET_RATIO = 2.0  # the background's error power above this multiple of the foreground's: put it back
ERROR_SMOOTHING = 0.5  # per block, of both error powers (about 30 ms with 20 ms blocks)
REGULARISATION = 1e-6  # per-bin power floor (relative to full scale): no huge steps on silence


@dataclass
class LinearEchoStats:
    copies: int = 0  # background -> foreground (the echo path estimate improved)
    resets: int = 0  # foreground -> background (the background drifted: double talk)


class LinearEchoFilter:
    """`process(reference, microphone)` -> the microphone less the foreground filter's echo
    estimate; both blocks `block` samples long, the reference block the one played at the same
    time as the microphone block was captured (the filter spans `partitions` blocks of delay)."""

    def __init__(self, block: int, partitions: int, step: float = 0.5) -> None:
        if block <= 0 or partitions <= 0 or not 0.0 < step <= 1.0:
            raise ValueError("block and partitions must be positive, step in (0, 1]")
        self.block = block
        self.partitions = partitions
        self.step = step
        self.stats = LinearEchoStats()
        bins = block + 1
        self._spectra = np.zeros((partitions, bins), np.complex64)  # newest first
        self._powers = np.zeros((partitions, bins), np.float32)
        self._background = np.zeros((partitions, bins), np.complex64)
        self._foreground = np.zeros((partitions, bins), np.complex64)
        self._window = np.zeros(2 * block, np.float32)  # the last two reference blocks
        self._padded = np.zeros(2 * block, np.float32)  # [zeros, error]: the gradient's input
        self._floor = np.float32(REGULARISATION * 2 * block)
        self._err_background = self._err_foreground = 0.0
        self.last_echo_power = 0.0  # mean power of the foreground's echo estimate in the last block

    def process(self, reference: np.ndarray, microphone: np.ndarray) -> np.ndarray:
        n = self.block
        self._window[:n] = self._window[n:]
        self._window[n:] = reference
        spectrum = np.fft.rfft(self._window).astype(np.complex64)
        self._spectra[1:] = self._spectra[:-1]
        self._spectra[0] = spectrum
        self._powers[1:] = self._powers[:-1]
        self._powers[0] = spectrum.real**2 + spectrum.imag**2
        echo_b = np.fft.irfft(np.einsum("kn,kn->n", self._background, self._spectra), 2 * n)[n:]
        echo_f = np.fft.irfft(np.einsum("kn,kn->n", self._foreground, self._spectra), 2 * n)[n:]
        mic = np.asarray(microphone, np.float32)
        err_b = mic - echo_b.astype(np.float32)
        err_f = mic - echo_f.astype(np.float32)
        # Normalised LMS per bin: the reference's power over the whole span the filter covers.
        self._padded[n:] = err_b
        err_spectrum = np.fft.rfft(self._padded).astype(np.complex64)
        norm = self.step / (self._powers.sum(axis=0) + self._floor)
        gradient = np.fft.irfft(np.conj(self._spectra) * (err_spectrum * norm)[None], 2 * n, axis=1)
        gradient[:, n:] = 0.0  # a linear, not circular, correlation: the constraint
        self._background += np.fft.rfft(gradient, axis=1).astype(np.complex64)
        a = ERROR_SMOOTHING
        self._err_background = a * self._err_background + (1 - a) * float(np.dot(err_b, err_b))
        self._err_foreground = a * self._err_foreground + (1 - a) * float(np.dot(err_f, err_f))
        if self._err_background < COPY_RATIO * self._err_foreground:
            self._foreground[:] = self._background
            self._err_foreground = self._err_background
            self.stats.copies += 1
            err_f, echo_f = err_b, echo_b
        elif self._err_background > RESET_RATIO * self._err_foreground:
            self._background[:] = self._foreground
            self._err_background = self._err_foreground
            self.stats.resets += 1
        self.last_echo_power = float(np.mean(np.square(echo_f, dtype=np.float64)))
        return err_f
