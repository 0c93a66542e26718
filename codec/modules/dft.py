"""A real-valued DFT basis: the encoder's FFT as a plain matrix product.

One frame's FFT of a few hundred points costs less as a matrix product than as a call into
the FFT library plus complex arithmetic, and real-valued graphs export to ONNX (which has no
complex tensors). `x @ rfft_basis(n)` gives [Re | Im] of `torch.fft.rfft(x)`.
"""

from __future__ import annotations

import math

import torch


def rfft_basis(n: int) -> torch.Tensor:
    """[n, 2 * (n // 2 + 1)]: columns are cos and -sin of each bin."""
    t = torch.arange(n, dtype=torch.float64)[:, None]
    k = torch.arange(n // 2 + 1, dtype=torch.float64)[None, :]
    angle = 2 * math.pi * t * k / n
    return torch.cat([torch.cos(angle), -torch.sin(angle)], dim=1).float()
