"""The trunk's residual unit: a causal ConvNeXt block with FiLM conditioning."""

from __future__ import annotations

import torch
from torch import nn
from torch.nn import functional as F

from codec.modules.conv import CausalConv1d
from codec.modules.film import FiLM


class ConvNeXtBlock(nn.Module):
    """depthwise causal conv -> LayerNorm -> FiLM -> pointwise MLP, residual.

    Works on [B, T, C] so that the per-frame parts are plain matrix products.
    """

    def __init__(self, channels: int, hidden_mult: int, kernel_size: int, dilation: int = 1, film: bool = True) -> None:
        super().__init__()
        self.dwconv = CausalConv1d(channels, channels, kernel_size, dilation=dilation, groups=channels)
        self.norm = nn.LayerNorm(channels)
        self.film = FiLM(channels) if film else None
        self.pw1 = nn.Linear(channels, hidden_mult * channels)
        self.pw2 = nn.Linear(hidden_mult * channels, channels)
        self.scale = nn.Parameter(torch.full((channels,), 0.1))

    def forward(self, x: torch.Tensor, cond: torch.Tensor) -> torch.Tensor:
        h = self.dwconv(x.transpose(1, 2)).transpose(1, 2)
        h = self.norm(h)
        if self.film is not None:
            h = self.film(h, cond)
        h = self.pw2(F.gelu(self.pw1(h)))
        return x + self.scale * h
