"""Conditioning on a per-frame denoise flag (the denoise switch).

- `FiLM`: feature-wise linear modulation, the `ssc` family's, inside its blocks;
- `FlagGatedResidual`: what the soundstream family adds to a frozen encoder: a residual that
  the flag multiplies, so with the flag off the layer is the identity bit for bit; optionally
  with a causal temporal context (`codec.modules.temporal_context`) inside its adapter.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from codec.modules.temporal_context import TemporalContext


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
    """y = x + c * (x * gamma + beta + up(LReLU(down(x) + ctx(x)))) on [B, C, L], c the flag of each step.

    The per-channel affine is FiLM by a 0/1 flag; the optional adapter (`hidden` > 0, pointwise)
    lets the flag change features across channels, which a per-channel affine of a frozen
    network's features cannot. The optional context (`context` > 0 channels, needs the adapter)
    adds a causal summary of the point's last steps to the adapter's hidden layer, so the
    adapter can weigh a step against what has persisted (stationary noise) before it.
    gamma, beta, `up` and the context's output start at zero, so a fresh layer is the identity;
    and where c is 0 the output is x itself, whatever was learnt: the switch off is the base
    network. The context runs whatever the flag (`forward` with flag None): its state follows
    the signal, so a flag switched on mid-stream finds it warm, and a stream runs as offline."""

    def __init__(self, channels: int, hidden: int = 0, slope: float = 0.3, context: int = 0) -> None:
        super().__init__()
        if context and not hidden:
            raise ValueError("a temporal context feeds the adapter: it needs hidden channels")
        self.slope = slope
        self.gamma = nn.Parameter(torch.zeros(channels))
        self.beta = nn.Parameter(torch.zeros(channels))
        self.down: nn.Conv1d | None = None
        self.up: nn.Conv1d | None = None
        self.context: TemporalContext | None = TemporalContext(channels, context, hidden, slope) if context else None
        if hidden:
            self.down = nn.Conv1d(channels, hidden, 1)
            up = nn.Conv1d(hidden, channels, 1)
            for p in up.parameters():
                nn.init.zeros_(p)
            self.up = up

    def residual(self, x: torch.Tensor, ctx: torch.Tensor | None = None) -> torch.Tensor:
        """What the flag switches in: [B, C, L] -> [B, C, L]; ctx the context's output, if any."""
        r = x * self.gamma[:, None] + self.beta[:, None]
        if self.down is not None and self.up is not None:
            hidden = self.down(x) if ctx is None else self.down(x) + ctx
            r = r + self.up(F.leaky_relu(hidden, self.slope))
        return r

    def forward(self, x: torch.Tensor, flag: torch.Tensor | None) -> torch.Tensor:
        """x [B, C, L]; flag [B, 1, L] (0 or 1 a step), or None: off throughout (x is returned,
        the context's state still advances)."""
        ctx = self.context(x) if self.context is not None else None
        if flag is None:
            return x
        return x + flag * self.residual(x, ctx)
