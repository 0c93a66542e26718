"""Explicit streaming state, after moshi: each stateful layer owns a dict of tensors.

Offline, a layer starts from zeros (causal padding). Inside `streaming(model, batch)`
every `StreamingModule` keeps its state between calls instead, so feeding a signal
chunk by chunk runs the very same code as feeding it whole. All states start at zero,
which is what makes `reset_streams` (a new call joining a batched decoder) a fill.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

import torch
from torch import nn


class StreamingModule(nn.Module):
    """A layer whose causal context is kept between calls while streaming."""

    def __init__(self) -> None:
        super().__init__()
        self._state: dict[str, torch.Tensor] | None = None

    def initial_state(self, batch_size: int, device: torch.device, dtype: torch.dtype) -> dict[str, torch.Tensor]:
        raise NotImplementedError

    @property
    def is_streaming(self) -> bool:
        return self._state is not None

    def context(self, name: str, batch_size: int, like: torch.Tensor) -> torch.Tensor:
        """The stored context while streaming, else the zeros an offline pass pads with."""
        if self._state is not None:
            state = self._state[name]
            if state.shape[0] != batch_size:
                raise ValueError(f"streaming batch is {state.shape[0]}, got a batch of {batch_size}")
            return state
        return self.initial_state(batch_size, like.device, like.dtype)[name]

    def remember(self, name: str, value: torch.Tensor) -> None:
        if self._state is not None:
            self._state[name] = value


def _streaming_modules(root: nn.Module) -> Iterator[StreamingModule]:
    return (m for m in root.modules() if isinstance(m, StreamingModule))


@contextmanager
def streaming(root: nn.Module, batch_size: int) -> Iterator[None]:
    """Keep causal state in every streaming layer of `root` for `batch_size` streams."""
    param = next(root.parameters(), None)
    device = param.device if param is not None else torch.device("cpu")
    dtype = param.dtype if param is not None else torch.float32
    modules = list(_streaming_modules(root))
    if any(m.is_streaming for m in modules):
        raise RuntimeError("this model is already streaming")
    for m in modules:
        m._state = m.initial_state(batch_size, device, dtype)
    try:
        yield
    finally:
        for m in modules:
            m._state = None


def reset_streams(root: nn.Module, rows: torch.Tensor) -> None:
    """Restart the streams in `rows` (a bool mask or index tensor) from silence."""
    for m in _streaming_modules(root):
        if m._state is None:
            raise RuntimeError("reset_streams needs a streaming model")
        for value in m._state.values():
            value[rows] = 0
