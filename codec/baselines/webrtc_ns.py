"""WebRTC's noise suppressor, the enhancer a browser call runs before its codec.

It runs through `livekit`'s `rtc.AudioProcessingModule` (the `frontend` extra) with noise
suppression and the high-pass filter on, as a call runs them, and echo cancellation and
gain control off: only the denoising is measured. The module takes 10 ms int16 frames and
processes them in place; its suppressor delays the audio by 96 samples at 16 kHz (its
256-point FFT over 160-sample frames; the high-pass filter adds none), which is cut from
the output so that it lines up with the input.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from codec.errors import CodecError

APM_RATES = (8_000, 16_000, 32_000, 48_000)
FRAME_S = 0.010
SUPPRESSOR_DELAY_S = 0.006  # 96 samples at 16 kHz (measured with a click train: the high-pass filter adds none)
MISSING = "WebRTC's noise suppressor needs the livekit package (pip install -e '.[frontend]')"


def _rtc() -> Any:
    try:
        from livekit import rtc
    except (ImportError, OSError):  # OSError: the package is there, its native library does not load
        raise CodecError(MISSING) from None
    return rtc


class WebRtcNoiseSuppressor:
    """Enhances whole clips; each clip gets a fresh module (no noise estimate carried over)."""

    name = "webrtc ns"

    def __init__(self) -> None:
        self._rtc = _rtc()

    def enhance(self, audio: np.ndarray, sample_rate: int = 16_000) -> np.ndarray:
        """Mono float audio -> the suppressed audio, as long as the input and aligned with it."""
        if sample_rate not in APM_RATES:
            raise ValueError(f"WebRTC's APM runs at 8, 16, 32 or 48 kHz, not {sample_rate} Hz")
        frame = round(sample_rate * FRAME_S)
        delay = round(sample_rate * SUPPRESSOR_DELAY_S)
        frames = -(-(audio.size + delay) // frame)
        pcm = np.zeros(frames * frame, np.int16)
        pcm[: audio.size] = np.rint(np.clip(audio, -1.0, 32767 / 32768) * 32768.0)
        apm = self._rtc.AudioProcessingModule(echo_cancellation=False, noise_suppression=True, high_pass_filter=True, auto_gain_control=False)
        # One AudioFrame over our own buffer: livekit keeps a writable bytearray, so the module
        # writes its output into the numpy view we read back.
        buffer = self._rtc.AudioFrame(bytearray(2 * frame), sample_rate, 1, frame)
        view = np.frombuffer(buffer.data, np.int16)
        for start in range(0, pcm.size, frame):
            view[:] = pcm[start : start + frame]
            apm.process_stream(buffer)
            pcm[start : start + frame] = view
        return pcm[delay : delay + audio.size].astype(np.float32) / 32768.0
