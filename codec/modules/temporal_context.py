"""Causal temporal context for the denoise switch: what a pointwise layer cannot see.

Every other part of the switch (`codec.modules.film.FlagGatedResidual`) sees one step of one
frame, so it cannot tell stationary noise from speech by how long it has lasted. A
`TemporalContext` summarises the last `receptive_field` steps of its point's features: a
pointwise projection to `channels`, then causal dilated convolutions (kernel 3, dilations
1, 2, 4, 8, 16: 63 steps, 1.26 s at the 50 Hz points it serves), each a residual on the one
before, and a pointwise projection to the adapter's hidden width, zero-initialised so that a
fresh context adds nothing. Its convolutions are `CausalConv1d`s: streaming state is theirs
(`codec.modules.streaming`), a stream fed one frame at a time runs what an utterance runs
offline, and it looks at no future step (no added latency).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from codec.modules.causal_conv import CausalConv1d

CONTEXT_DILATIONS = (1, 2, 4, 8, 16)
CONTEXT_KERNEL = 3


class TemporalContext(nn.Module):
    """[B, C, L] -> [B, out_channels, L], causal, from the last `receptive_field` steps of x."""

    def __init__(self, in_channels: int, channels: int, out_channels: int, slope: float) -> None:
        super().__init__()
        self.slope = slope
        self.inp = nn.Conv1d(in_channels, channels, 1)
        self.layers = nn.ModuleList(CausalConv1d(channels, channels, CONTEXT_KERNEL, dilation=d) for d in CONTEXT_DILATIONS)
        out = nn.Conv1d(channels, out_channels, 1)
        for p in out.parameters():
            nn.init.zeros_(p)
        self.out = out

    @property
    def receptive_field(self) -> int:
        return 1 + (CONTEXT_KERNEL - 1) * sum(CONTEXT_DILATIONS)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h = self.inp(x)
        for layer in self.layers:
            h = h + layer(F.leaky_relu(h, self.slope))
        return self.out(F.leaky_relu(h, self.slope))
