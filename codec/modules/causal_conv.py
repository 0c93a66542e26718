"""Causal convolutions over time in [B, C, T] layout, for waveform-rate stacks.

`CausalConv1d` keeps the last `(kernel - 1) * dilation + 1 - stride` input steps as its
context: each call concatenates them before its new steps and runs an unpadded ("valid")
convolution, so T new steps give T / stride outputs that depend on the past only.
`CausalConvTranspose1d` runs its new steps alone and adds the `kernel - stride` output steps
that the previous call's last inputs spilled over; it emits `T * stride` steps a call and
keeps the spill (without bias: the bias is added once, when a step is emitted).

Offline both start from zeros, which is exactly what a fresh stream holds, so one module
serves a whole utterance and a 20 ms frame alike (tests/codec/test_soundstream.py).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from codec.modules.streaming import StreamingModule


class CausalConv1d(StreamingModule):
    def __init__(self, in_channels: int, out_channels: int, kernel_size: int, stride: int = 1, dilation: int = 1, groups: int = 1, bias: bool = True) -> None:
        super().__init__()
        if kernel_size < stride:
            raise ValueError("a causal strided convolution needs kernel_size >= stride")
        self.conv = nn.Conv1d(in_channels, out_channels, kernel_size, stride=stride, dilation=dilation, groups=groups, bias=bias)
        self.stride = stride
        self.context_steps = (kernel_size - 1) * dilation + 1 - stride
        self.in_channels = in_channels

    def initial_state(self, batch_size: int, device: torch.device, dtype: torch.dtype) -> dict[str, torch.Tensor]:
        return {"past": torch.zeros(batch_size, self.in_channels, self.context_steps, device=device, dtype=dtype)}

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """x [B, C_in, T] (T a multiple of the stride) -> [B, C_out, T / stride]."""
        if x.shape[-1] % self.stride:
            raise ValueError(f"expected a multiple of {self.stride} steps, got {x.shape[-1]}")
        if self.context_steps:
            x = torch.cat([self.context("past", x.shape[0], x), x], dim=-1)
            self.remember("past", x[..., x.shape[-1] - self.context_steps :])
        return self.conv(x)


class CausalConvTranspose1d(StreamingModule):
    def __init__(self, in_channels: int, out_channels: int, kernel_size: int, stride: int, groups: int = 1) -> None:
        super().__init__()
        if kernel_size < stride:
            raise ValueError("a causal transposed convolution needs kernel_size >= stride")
        self.conv = nn.ConvTranspose1d(in_channels, out_channels, kernel_size, stride=stride, groups=groups)
        self.stride = stride
        self.spill = kernel_size - stride
        self.out_channels = out_channels

    def initial_state(self, batch_size: int, device: torch.device, dtype: torch.dtype) -> dict[str, torch.Tensor]:
        return {"spill": torch.zeros(batch_size, self.out_channels, self.spill, device=device, dtype=dtype)}

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """x [B, C_in, T] -> [B, C_out, T * stride]."""
        c = self.conv
        y = F.conv_transpose1d(x, c.weight, None, c.stride, 0, 0, c.groups)  # [B, C, (T - 1) s + k]
        emitted = x.shape[-1] * self.stride
        assert c.bias is not None  # built with a bias, added once a step is emitted
        if self.spill:
            spill = self.context("spill", x.shape[0], x)
            y = torch.cat([y[..., : self.spill] + spill, y[..., self.spill :]], dim=-1)
            self.remember("spill", y[..., emitted:])
        return y[..., :emitted] + c.bias[:, None]
