"""Causal 1-D convolution at the frame rate, padded on the left or fed from its state."""

from __future__ import annotations

import torch
from torch import nn

from codec.modules.streaming import StreamingModule


class CausalConv1d(StreamingModule):
    """`nn.Conv1d` whose output at frame t depends on frames <= t only.

    Depthwise convolutions (groups == channels) run as a multiply-and-sum over an unfolded
    view (one frame: a plain multiply-and-sum); for the one-frame calls of streaming, oneDNN's
    and onnxruntime's grouped convolutions cost ~10x more. Unfold does not export to ONNX, so
    an exported graph of several frames keeps the convolution.
    """

    def __init__(self, in_channels: int, out_channels: int, kernel_size: int, dilation: int = 1, groups: int = 1) -> None:
        super().__init__()
        self.conv = nn.Conv1d(in_channels, out_channels, kernel_size, dilation=dilation, groups=groups)
        self.context_frames = (kernel_size - 1) * dilation
        self.in_channels = in_channels
        self.depthwise = groups == in_channels == out_channels and groups > 1

    def initial_state(self, batch_size: int, device: torch.device, dtype: torch.dtype) -> dict[str, torch.Tensor]:
        return {"past": torch.zeros(batch_size, self.in_channels, self.context_frames, device=device, dtype=dtype)}

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """x: [B, C, T] -> [B, C_out, T]."""
        if self.context_frames == 0:
            return self.conv(x)
        x = torch.cat([self.context("past", x.shape[0], x), x], dim=-1)
        self.remember("past", x[..., -self.context_frames :])
        if self.depthwise and x.shape[-1] == self.context_frames + 1:  # one frame: a dot per channel
            window = x[..., :: self.conv.dilation[0]]
            return (window * self.conv.weight[:, 0]).sum(-1, keepdim=True) + self.conv.bias[:, None]
        if self.depthwise and not torch.onnx.is_in_onnx_export():
            windows = x.unfold(-1, self.context_frames + 1, 1)[..., :: self.conv.dilation[0]]
            return torch.einsum("bctk,ck->bct", windows, self.conv.weight[:, 0]) + self.conv.bias[:, None]
        return self.conv(x)
