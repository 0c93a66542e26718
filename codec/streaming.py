"""Per-stream encoder and decoder objects: feed whole frames, keep state, match offline output.

Both hold `batch_size` independent streams (a server decodes many calls in one call);
`reset(rows)` restarts some of them from silence without touching the others. They run
the model's own layers inside `codec.modules.streaming`, so chunked output equals the
offline forward for any chunking (tests/codec/test_streaming.py).
"""

from __future__ import annotations

from contextlib import ExitStack
from typing import TYPE_CHECKING, Self

import numpy as np
import torch

from codec.modules import reset_streams, streaming

if TYPE_CHECKING:
    from codec.weights import AnyCodec


def _as_batch(samples: np.ndarray | torch.Tensor, batch_size: int) -> torch.Tensor:
    x = torch.as_tensor(samples, dtype=torch.float32)
    if x.dim() == 1:
        x = x.unsqueeze(0)
    if x.shape[0] != batch_size:
        raise ValueError(f"expected {batch_size} streams, got {x.shape[0]}")
    return x


class _StreamingPart:
    def __init__(self, model: AnyCodec, part: torch.nn.Module, batch_size: int) -> None:
        if model.training:
            raise ValueError("streaming needs a model in eval mode")
        self.model = model
        self.batch_size = batch_size
        self._part = part
        self._stack = ExitStack()
        self._stack.enter_context(streaming(part, batch_size))

    def reset(self, rows: torch.Tensor | list[int] | None = None) -> None:
        """Restart the given streams (all if None) from silence."""
        mask = torch.ones(self.batch_size, dtype=torch.bool) if rows is None else torch.as_tensor(rows)
        with torch.inference_mode():
            reset_streams(self._part, mask)

    def close(self) -> None:
        self._stack.close()

    def __enter__(self) -> Self:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


class StreamingEncoder(_StreamingPart):
    def __init__(self, model: AnyCodec, batch_size: int = 1) -> None:
        super().__init__(model, model.encoder, batch_size)

    def encode(self, samples: np.ndarray | torch.Tensor, n_layers: int, denoise: float | torch.Tensor = 0.0) -> torch.Tensor:
        """samples [B, k * hop] (or [k * hop] for one stream) -> codes [B, n_layers, k]."""
        x = _as_batch(samples, self.batch_size)
        with torch.inference_mode():
            return self.model.quantizer.encode(self.model.encoder(x, denoise), n_layers)


class StreamingDecoder(_StreamingPart):
    def __init__(self, model: AnyCodec, batch_size: int = 1) -> None:
        super().__init__(model, model.decoder, batch_size)

    def decode(self, codes: torch.Tensor, layer_counts: torch.Tensor | None = None, denoise: float | torch.Tensor = 0.0) -> torch.Tensor:
        """codes [B, K, k] -> samples [B, k * hop]; layer_counts [B, k] picks layers per frame."""
        if codes.dim() == 2:
            codes = codes.unsqueeze(0)
        if codes.shape[0] != self.batch_size:
            raise ValueError(f"expected {self.batch_size} streams, got {codes.shape[0]}")
        with torch.inference_mode():
            return self.model.decoder(self.model.quantizer.decode(codes, layer_counts), denoise)
