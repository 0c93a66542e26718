"""Conditioning on a per-frame denoise flag (the denoise switch).

- `FiLM`: feature-wise linear modulation, the `ssc` family's, inside its blocks;
- `FlagGatedResidual`: what the soundstream family adds to a frozen encoder: a residual that
  the flag multiplies, so with the flag off the layer is the identity bit for bit.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
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


class FlagGatedResidual(nn.Module):
    """y = x + c * (x * gamma + beta + up(LReLU(down(x)))) on [B, C, L], c the flag of each step.

    The per-channel affine is FiLM by a 0/1 flag; the optional adapter (`hidden` > 0, pointwise,
    so causal and stateless: the same in a stream as offline) lets the flag change features
    across channels, which a per-channel affine of a frozen network's features cannot.
    gamma, beta and `up` start at zero, so a fresh layer is the identity; and where c is 0 the
    output is x + 0 = x exactly, whatever was learnt: the switch off is the base network."""

    def __init__(self, channels: int, hidden: int = 0, slope: float = 0.3) -> None:
        super().__init__()
        self.slope = slope
        self.gamma = nn.Parameter(torch.zeros(channels))
        self.beta = nn.Parameter(torch.zeros(channels))
        self.down: nn.Conv1d | None = None
        self.up: nn.Conv1d | None = None
        if hidden:
            self.down = nn.Conv1d(channels, hidden, 1)
            up = nn.Conv1d(hidden, channels, 1)
            for p in up.parameters():
                nn.init.zeros_(p)
            self.up = up

    def residual(self, x: torch.Tensor) -> torch.Tensor:
        """What the flag switches in: [B, C, L] -> [B, C, L]."""
        r = x * self.gamma[:, None] + self.beta[:, None]
        if self.down is not None and self.up is not None:
            r = r + self.up(F.leaky_relu(self.down(x), self.slope))
        return r

    def forward(self, x: torch.Tensor, flag: torch.Tensor) -> torch.Tensor:
        """x [B, C, L]; flag [B, 1, L] (0 or 1 a step)."""
        return x + flag * self.residual(x)
