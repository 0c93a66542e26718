"""Feature-wise linear modulation by a per-frame condition (the denoise switch)."""

from __future__ import annotations

import torch
from torch import nn


class FiLM(nn.Module):
    """y = x * (1 + gamma(c)) + beta(c); zero-initialised, so it starts as the identity."""

    def __init__(self, channels: int, cond_dim: int = 1) -> None:
        super().__init__()
        self.proj = nn.Linear(cond_dim, 2 * channels)
        nn.init.zeros_(self.proj.weight)
        nn.init.zeros_(self.proj.bias)

    def forward(self, x: torch.Tensor, cond: torch.Tensor) -> torch.Tensor:
        """x: [B, T, C]; cond: [B, T, cond_dim]."""
        gamma, beta = self.proj(cond).chunk(2, dim=-1)
        return x * (1.0 + gamma) + beta
