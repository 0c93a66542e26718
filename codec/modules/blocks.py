"""The trunk's residual unit: a causal ConvNeXt block with FiLM conditioning."""

from __future__ import annotations

import torch
from torch import nn
from torch.nn import functional as F

from codec.modules.conv import CausalDepthwiseConv1d
from codec.modules.film import FiLM


class ConvNeXtBlock(nn.Module):
    """depthwise causal conv -> LayerNorm -> FiLM -> pointwise MLP, residual.

    Works on [B, T, C] so that the per-frame parts are plain matrix products.
    """

    def __init__(self, channels: int, hidden_mult: int, kernel_size: int, dilation: int = 1, film: bool = True) -> None:
        super().__init__()
        self.dwconv = CausalDepthwiseConv1d(channels, kernel_size, dilation=dilation)
        self.norm = nn.LayerNorm(channels)
        self.film = FiLM(channels) if film else None
        self.pw1 = nn.Linear(channels, hidden_mult * channels)
        self.pw2 = nn.Linear(hidden_mult * channels, channels)
        self.scale: nn.Parameter | None = nn.Parameter(torch.full((channels,), 0.1))

    def forward(self, x: torch.Tensor, cond: torch.Tensor) -> torch.Tensor:
        h = self.norm(self.dwconv(x))
        if self.film is not None:
            h = self.film(h, cond)
        h = self.pw2(F.gelu(self.pw1(h)))
        return x + h if self.scale is None else x + self.scale * h

    @torch.no_grad()
    def fold_for_inference(self, cond: float) -> None:
        """Fold a fixed condition's FiLM into the LayerNorm's affine and the residual scale
        into `pw2`: the same function of x without FiLM's projection, split, multiply and adds
        or the scale's multiply (for export)."""
        if self.film is not None:
            gamma, beta = self.film.proj(torch.tensor([float(cond)])).chunk(2, dim=-1)
            self.norm.bias.mul_(1.0 + gamma).add_(beta)
            self.norm.weight.mul_(1.0 + gamma)
            self.film = None
        if self.scale is not None:
            self.pw2.weight.mul_(self.scale[:, None])
            self.pw2.bias.mul_(self.scale)
            self.scale = None
