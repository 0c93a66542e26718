"""The linear echo filter beside (optionally ahead of) AEC3: a partitioned-block frequency-domain Kalman filter
(PBFDKF, the state-space frequency-domain adaptive filter of Enzner & Vary and Kuech et al.),
overlap-save, one block per codec frame, in numpy, with a foreground copy of its weights.

Why a Kalman filter and not NLMS: each frequency bin of each partition gets its own step, the
uncertainty of its weight (`P`, the state error variance) over the error's expected power. At
the start `P` is large and the filter takes large steps; as it learns, `P` falls to what the
echo path's assumed drift (`1 - A**2` of each weight's power per block) adds back. The error's
power in the denominator includes near-end speech, so while both sides talk the step shrinks
by itself. `P` starts lower for later partitions (a room's echo decays: the prior puts the
steps where the echo is), which is most of the speed-up over NLMS on a 300 ms room.

Two copies, as in Speex's MDF: the background filter adapts on every block; the foreground,
whose output is used, takes the background's weights only when the background has removed
clearly more for a while, and the background is put back to the foreground when it has
drifted far (double talk, not a better echo path). The error's power is smoothed slowly (it
converges faster on echo alone); the foreground is what keeps double talk from pulling it away.
When the foreground's output is louder than the microphone for about half a second (the echo
path, or the reference's alignment, moved), it is zeroed and the uncertainty goes back to the
prior, so that the filter learns the new path as fast as the first.

Cost per block: one rfft of the reference, two products summed over the partitions, two
irffts, one rfft of the error, the gradient's constraint (a batched irfft/rfft over the
partitions) and elementwise updates over [partitions, bins].
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

TRANSITION = 0.9999  # A: how much of a weight survives one block (the echo path's assumed drift)
INITIAL_UNCERTAINTY = 0.3  # P of the first partition at the start, relative to full-scale weights (the echo path unknown)
PRIOR_DECAY_DB_S = 150.0  # P at the start falls this fast over the partitions' delay (a room's echo: -60 dB in 0.4 s)
SHARE = 0.25  # of the weights' uncertainty times the reference's power that shows in the error (the overlap-save window)
NOISE_SMOOTHING = 0.9  # per block, of the error's power per bin (the observation noise: near end + what is left)
COPY_RATIO = 0.7  # the background's error power below this fraction of the foreground's: copy it
RESET_RATIO = 2.0  # the background's error power above this multiple of the foreground's: put it back
RESTART_RATIO = 1.25  # the foreground's error power this far above the microphone's (1 dB, ~0.5 s): it adds echo, start over
RESTART_SMOOTHING = 0.96  # per block, of the powers that decide a restart (about 0.5 s with 20 ms blocks)
ERROR_SMOOTHING = 0.5  # per block, of both filters' error powers (about 30 ms with 20 ms blocks)
FLOOR = 1e-10  # per-bin power floor relative to full scale: no division by silence


@dataclass
class LinearEchoStats:
    copies: int = 0  # background -> foreground (the echo path estimate improved)
    resets: int = 0  # foreground -> background (the background drifted: double talk)
    restarts: int = 0  # the foreground added more than it removed (the echo path or its alignment changed): zeroed
    realignments: int = 0  # `realign` calls: the reference was moved, everything forgotten


class LinearEchoFilter:
    """`process(reference, microphone)` -> the microphone less the foreground filter's echo
    estimate; both blocks `block` samples long, the reference block the one played at the same
    time as the microphone block was captured (the filter spans `partitions` blocks of delay).
    `last_echo` holds the last block's echo estimate (for the residual echo suppressor)."""

    def __init__(self, block: int, partitions: int, transition: float = TRANSITION, initial_uncertainty: float = INITIAL_UNCERTAINTY) -> None:
        if block <= 0 or partitions <= 0 or not 0.0 < transition < 1.0 or initial_uncertainty <= 0:
            raise ValueError("block and partitions must be positive, transition in (0, 1), initial_uncertainty positive")
        self.block = block
        self.partitions = partitions
        self.stats = LinearEchoStats()
        self._a2 = np.float32(transition**2)
        bins = block + 1
        self._spectra = np.zeros((partitions, bins), np.complex64)  # the reference's, newest first
        self._powers = np.zeros((partitions, bins), np.float32)
        self._background = np.zeros((partitions, bins), np.complex64)
        self._foreground = np.zeros((partitions, bins), np.complex64)
        block_s = block / 16_000  # the prior's decay per partition, taken at 16 kHz (the call's rate)
        prior = initial_uncertainty * 10 ** (-PRIOR_DECAY_DB_S * block_s * np.arange(partitions) / 10)
        self._prior = np.repeat(prior[:, None], bins, axis=1).astype(np.float32)
        self._uncertainty = self._prior.copy()
        self._noise = np.zeros(bins, np.float32)
        self._window = np.zeros(2 * block, np.float32)  # the last two reference blocks
        self._padded = np.zeros(2 * block, np.float32)  # [zeros, error]
        self._floor = np.float32(FLOOR * 2 * block)
        self._err_background = self._err_foreground = 0.0
        self._mic_slow = self._err_slow = 0.0  # for the restart: the microphone's and the foreground error's powers
        self.last_echo = np.zeros(block, np.float32)

    def realign(self) -> None:
        """The reference was moved (its delay re-estimated): the weights, their uncertainty and
        the reference's history no longer line up with the microphone. Start as from new."""
        for state in (self._spectra, self._powers, self._background, self._foreground, self._noise, self._window):
            state[...] = 0
        self._uncertainty = self._prior.copy()
        self._err_background = self._err_foreground = self._mic_slow = self._err_slow = 0.0
        self.last_echo = np.zeros(self.block, np.float32)
        self.stats.realignments += 1

    def _echo(self, weights: np.ndarray) -> np.ndarray:
        return np.fft.irfft(np.einsum("kn,kn->n", weights, self._spectra), 2 * self.block)[self.block :].astype(np.float32, copy=False)

    def process(self, reference: np.ndarray, microphone: np.ndarray) -> np.ndarray:
        n = self.block
        self._window[:n] = self._window[n:]
        self._window[n:] = reference
        spectrum = np.fft.rfft(self._window).astype(np.complex64, copy=False)  # no copy on numpy >= 2 (float32 in, complex64 out)
        self._spectra[1:] = self._spectra[:-1]
        self._spectra[0] = spectrum
        self._powers[1:] = self._powers[:-1]
        self._powers[0] = spectrum.real**2 + spectrum.imag**2
        mic = np.asarray(microphone, np.float32)
        echo_b, echo_f = self._echo(self._background), self._echo(self._foreground)
        err_b, err_f = mic - echo_b, mic - echo_f
        # The Kalman update of the background, every bin of every partition at once.
        self._padded[n:] = err_b
        err_spectrum = np.fft.rfft(self._padded).astype(np.complex64, copy=False)
        self._noise = NOISE_SMOOTHING * self._noise + (1 - NOISE_SMOOTHING) * (err_spectrum.real**2 + err_spectrum.imag**2)
        expected = SHARE * np.einsum("kn,kn->n", self._uncertainty, self._powers) + self._noise + self._floor
        gain = self._uncertainty / expected
        self._background += (gain * np.conj(self._spectra)) * err_spectrum[None]
        h = np.fft.irfft(self._background, 2 * n, axis=1)
        h[:, n:] = 0.0  # a linear, not circular, convolution: the constraint
        self._background = np.fft.rfft(h, axis=1).astype(np.complex64, copy=False)
        drift = (1.0 - self._a2) * (self._background.real**2 + self._background.imag**2)
        self._uncertainty = self._a2 * (1.0 - SHARE * gain * self._powers) * self._uncertainty + drift
        # The foreground follows only a background that has become clearly better.
        a = ERROR_SMOOTHING
        self._err_background = a * self._err_background + (1 - a) * float(np.dot(err_b, err_b))
        err_f_energy = float(np.dot(err_f, err_f))
        self._err_foreground = a * self._err_foreground + (1 - a) * err_f_energy
        r = RESTART_SMOOTHING
        self._mic_slow = r * self._mic_slow + (1 - r) * float(np.dot(mic, mic))
        self._err_slow = r * self._err_slow + (1 - r) * err_f_energy
        if self._err_slow > RESTART_RATIO * self._mic_slow:
            # The echo path moved (or the reference's alignment did): pass the microphone through
            # and let the background learn afresh, its uncertainty back to the prior's.
            self._foreground[:] = 0.0
            self._err_foreground = self._err_slow = self._mic_slow
            np.maximum(self._uncertainty, self._prior, out=self._uncertainty)
            self.stats.restarts += 1
            err_f, echo_f = mic, np.zeros_like(mic)
        if self._err_background < COPY_RATIO * self._err_foreground:
            self._foreground[:] = self._background
            self._err_foreground = self._err_background
            self.stats.copies += 1
            err_f, echo_f = err_b, echo_b
        elif self._err_background > RESET_RATIO * self._err_foreground:
            self._background[:] = self._foreground
            self._err_background = self._err_foreground
            self.stats.resets += 1
        self.last_echo = echo_f
        return err_f
