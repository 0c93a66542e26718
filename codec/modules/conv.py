"""Causal depthwise convolution over time at the frame rate, padded on the left or fed from its state."""

from __future__ import annotations

import torch
from torch import nn

from codec.modules.streaming import StreamingModule


class CausalDepthwiseConv1d(StreamingModule):
    """A depthwise `nn.Conv1d` on [B, T, C] whose output at step t depends on steps <= t only.

    Channels stay last (the blocks' layout), so a one-step call is a multiply-and-sum over
    the window with no transposes; oneDNN's and onnxruntime's grouped convolutions cost ~10x
    more for one step. Several steps run as a multiply-and-sum over an unfolded view; unfold
    does not export to ONNX, so an exported graph of several steps keeps the convolution.
    """

    def __init__(self, channels: int, kernel_size: int, dilation: int = 1) -> None:
        super().__init__()
        self.conv = nn.Conv1d(channels, channels, kernel_size, dilation=dilation, groups=channels)
        self.context_frames = (kernel_size - 1) * dilation
        self.channels = channels
        self.dilation = dilation

    def initial_state(self, batch_size: int, device: torch.device, dtype: torch.dtype) -> dict[str, torch.Tensor]:
        return {"past": torch.zeros(batch_size, self.context_frames, self.channels, device=device, dtype=dtype)}

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """x: [B, T, C] -> [B, T, C]."""
        weight = self.conv.weight[:, 0].t()  # [K, C]
        bias = self.conv.bias
        assert bias is not None  # built with a bias
        if self.context_frames == 0:
            return x * weight[0] + bias
        x = torch.cat([self.context("past", x.shape[0], x), x], dim=1)
        self.remember("past", x[:, -self.context_frames :])
        if x.shape[1] == self.context_frames + 1:  # one step: a dot per channel
            window = x if self.dilation == 1 else x[:, :: self.dilation]
            return (window * weight).sum(1, keepdim=True) + bias
        if not torch.onnx.is_in_onnx_export():
            windows = x.unfold(1, self.context_frames + 1, 1)[..., :: self.dilation]  # [B, T, C, K]
            return torch.einsum("btck,kc->btc", windows, weight) + bias
        return self.conv(x.transpose(1, 2)).transpose(1, 2)
