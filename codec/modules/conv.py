"""Causal 1-D convolution at the frame rate, padded on the left or fed from its state."""

from __future__ import annotations

import torch
from torch import nn

from codec.modules.streaming import StreamingModule


class CausalConv1d(StreamingModule):
    """`nn.Conv1d` whose output at frame t depends on frames <= t only."""

    def __init__(self, in_channels: int, out_channels: int, kernel_size: int, dilation: int = 1, groups: int = 1) -> None:
        super().__init__()
        self.conv = nn.Conv1d(in_channels, out_channels, kernel_size, dilation=dilation, groups=groups)
        self.context_frames = (kernel_size - 1) * dilation
        self.in_channels = in_channels

    def initial_state(self, batch_size: int, device: torch.device, dtype: torch.dtype) -> dict[str, torch.Tensor]:
        return {"past": torch.zeros(batch_size, self.in_channels, self.context_frames, device=device, dtype=dtype)}

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """x: [B, C, T] -> [B, C_out, T]."""
        if self.context_frames == 0:
            return self.conv(x)
        x = torch.cat([self.context("past", x.shape[0], x), x], dim=-1)
        self.remember("past", x[..., -self.context_frames :])
        return self.conv(x)
