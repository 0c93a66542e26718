"""One frame in, codes out (and back): the streaming step a call runs, on either engine.

A call codes one 20 ms frame at a time, so it pays per-call overhead, not arithmetic: eager
PyTorch spends milliseconds a frame dispatching small operators, ONNX Runtime a fraction of
that for the same layers (per-engine figures, with Lyra's TFLite beside them: docs/codec.md,
from `python -m codec bench --json`). Both engines take and give NumPy arrays here, so the
transmitter and receiver do not care which runs.

- `onnx` (the default): the exported streaming step, float32, same output as torch within
  1e-4; exported once per model id into a cache directory.
- `onnx-int8`: int8 weights where the model tolerates them; only for the `ssc` family (for
  the soundstream family it costs quality, so building it raises a CodecError).
- `torch`: eager PyTorch, no export (the reference).
"""

from __future__ import annotations

import threading
from typing import TYPE_CHECKING, Literal, Protocol

import numpy as np

if TYPE_CHECKING:
    from codec.weights import AnyCodec
# torch loads only when an engine is built: the command-line tools import the engine names
# from here to parse their arguments, and `--help` or a bad argument should not wait for it.

EngineName = Literal["onnx", "onnx-int8", "torch"]
ENGINES: tuple[str, ...] = ("onnx", "onnx-int8", "torch")
# float32 ONNX: right for every model. int8 costs the default (soundstream) model quality and
# is refused for it; the `ssc` model may still choose `onnx-int8`.
DEFAULT_ENGINE: EngineName = "onnx"
# A full-duplex call builds its encoder and decoder in two worker threads; the first ONNX
# export of a model traces it, and tracing is not thread-safe.
_BUILD_LOCK = threading.Lock()


class FrameEncoder(Protocol):
    def encode(self, frame: np.ndarray, n_layers: int, denoise: float = 0.0) -> np.ndarray:
        """One stream's samples [k * hop] -> codes [n_layers, k]."""

    def reset(self) -> None: ...

    def close(self) -> None: ...


class FrameDecoder(Protocol):
    def decode(self, codes: np.ndarray, denoise: float = 0.0) -> np.ndarray:
        """One stream's codes [layers, k] -> samples [k * hop]."""

    def decode_latent(self, latent: np.ndarray, denoise: float = 0.0) -> np.ndarray:
        """One frame's latent [D] (a concealer's prediction) -> samples [hop]."""

    def reset(self) -> None: ...

    def close(self) -> None: ...


class _TorchEncoder:
    def __init__(self, model: AnyCodec) -> None:
        from codec.streaming import StreamingEncoder

        self.inner = StreamingEncoder(model).__enter__()

    def encode(self, frame: np.ndarray, n_layers: int, denoise: float = 0.0) -> np.ndarray:
        return self.inner.encode(frame, n_layers, denoise)[0].numpy()

    def reset(self) -> None:
        self.inner.reset()

    def close(self) -> None:
        self.inner.close()  # frees the model's streaming state for the next call


class _TorchDecoder:
    def __init__(self, model: AnyCodec) -> None:
        import torch

        from codec.streaming import StreamingDecoder

        self.inner = StreamingDecoder(model).__enter__()
        self._tensor = torch.from_numpy

    def decode(self, codes: np.ndarray, denoise: float = 0.0) -> np.ndarray:
        return self.inner.decode(self._tensor(codes)[None], denoise=denoise)[0].numpy()

    def decode_latent(self, latent: np.ndarray, denoise: float = 0.0) -> np.ndarray:
        import torch

        with torch.inference_mode():
            return self.inner.model.decoder(self._tensor(np.asarray(latent, np.float32))[None, None], denoise)[0].numpy()

    def reset(self) -> None:
        self.inner.reset()

    def close(self) -> None:
        self.inner.close()


class _OnnxEncoder:
    def __init__(self, model: AnyCodec, model_id: str, int8: bool) -> None:
        from codec.onnx_runtime import OnnxStreamingEncoder

        self.inner = OnnxStreamingEncoder(model, model_id, int8=int8)

    def encode(self, frame: np.ndarray, n_layers: int, denoise: float = 0.0) -> np.ndarray:
        return self.inner.encode(frame[None], n_layers, denoise)[0]

    def reset(self) -> None:
        self.inner.reset()

    def close(self) -> None:
        pass


class _OnnxDecoder:
    def __init__(self, model: AnyCodec, model_id: str, int8: bool) -> None:
        from codec.onnx_runtime import OnnxStreamingDecoder

        self.inner = OnnxStreamingDecoder(model, model_id, int8=int8)

    def decode(self, codes: np.ndarray, denoise: float = 0.0) -> np.ndarray:
        return self.inner.decode(codes[None], denoise=denoise)[0]

    def decode_latent(self, latent: np.ndarray, denoise: float = 0.0) -> np.ndarray:
        return self.inner.decode_latent(np.asarray(latent)[None, None], denoise=denoise)[0]

    def reset(self) -> None:
        self.inner.reset()

    def close(self) -> None:
        pass


def frame_encoder(model: AnyCodec, model_id: str, engine: str = DEFAULT_ENGINE) -> FrameEncoder:
    with _BUILD_LOCK:
        return _frame_encoder(model, model_id, engine)


def frame_decoder(model: AnyCodec, model_id: str, engine: str = DEFAULT_ENGINE) -> FrameDecoder:
    with _BUILD_LOCK:
        return _frame_decoder(model, model_id, engine)


def _frame_encoder(model: AnyCodec, model_id: str, engine: str) -> FrameEncoder:
    if engine == "torch":
        return _TorchEncoder(model)
    if engine in ("onnx", "onnx-int8"):
        return _OnnxEncoder(model, model_id, int8=engine == "onnx-int8")
    raise ValueError(f"unknown engine {engine!r} (choose from {', '.join(ENGINES)})")


def _frame_decoder(model: AnyCodec, model_id: str, engine: str) -> FrameDecoder:
    if engine == "torch":
        return _TorchDecoder(model)
    if engine in ("onnx", "onnx-int8"):
        return _OnnxDecoder(model, model_id, int8=engine == "onnx-int8")
    raise ValueError(f"unknown engine {engine!r} (choose from {', '.join(ENGINES)})")


def prepare(model: AnyCodec, model_id: str, engine: str = DEFAULT_ENGINE) -> None:
    """Build (and for ONNX, export and cache) both halves once, before any call needs them:
    a first export takes seconds, which a call set-up should not."""
    frame_encoder(model, model_id, engine).close()
    frame_decoder(model, model_id, engine).close()
