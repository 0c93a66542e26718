"""Sample-domain edges of the codec: causal analysis framing and overlap-add synthesis."""

from __future__ import annotations

import math

import torch

from codec.modules.streaming import StreamingModule


class CausalFraming(StreamingModule):
    """Cuts samples into frames of `window` samples ending at each hop's last sample.

    Frame t covers samples [(t + 1) * hop - window, (t + 1) * hop): the current hop and
    the past, never the future. Offline the past before sample 0 is silence.
    """

    def __init__(self, window: int, hop: int) -> None:
        super().__init__()
        self.window = window
        self.hop = hop

    def initial_state(self, batch_size: int, device: torch.device, dtype: torch.dtype) -> dict[str, torch.Tensor]:
        return {"past": torch.zeros(batch_size, self.window - self.hop, device=device, dtype=dtype)}

    def forward(self, samples: torch.Tensor) -> torch.Tensor:
        """samples: [B, T * hop] -> frames [B, T, window]."""
        if samples.shape[-1] % self.hop:
            raise ValueError(f"expected a whole number of {self.hop}-sample frames, got {samples.shape[-1]} samples")
        x = torch.cat([self.context("past", samples.shape[0], samples), samples], dim=-1)
        if self.window > self.hop:
            self.remember("past", x[:, -(self.window - self.hop) :])
        # Frame t = hops t .. t + m - 1 of x, side by side (a strided unfold, written with
        # reshape and slices so that it exports to ONNX).
        hops = x.reshape(x.shape[0], -1, self.hop)
        m = self.window // self.hop
        frames = hops.shape[1] - m + 1
        return torch.cat([hops[:, i : i + frames] for i in range(m)], dim=-1)


def crossfade_window(hop: int, overlap: int) -> torch.Tensor:
    """Flat-top window of hop + overlap samples whose tails sum to one when overlapped."""
    n = torch.arange(overlap, dtype=torch.float64) + 0.5
    rise = torch.sin(math.pi * n / (2 * overlap)) ** 2
    flat = torch.ones(hop - overlap, dtype=torch.float64)
    return torch.cat([rise, flat, rise.flip(0)]).float()


class OverlapAdd(StreamingModule):
    """Joins per-frame segments of hop + overlap samples into a signal of hop samples a frame.

    Segment t starts at sample t * hop; its last `overlap` samples are added to the start
    of segment t + 1. The samples of frame t are final once segment t exists: no lookahead.
    """

    def __init__(self, hop: int, overlap: int) -> None:
        super().__init__()
        self.hop = hop
        self.overlap = overlap

    def initial_state(self, batch_size: int, device: torch.device, dtype: torch.dtype) -> dict[str, torch.Tensor]:
        return {"tail": torch.zeros(batch_size, self.overlap, device=device, dtype=dtype)}

    def forward(self, segments: torch.Tensor) -> torch.Tensor:
        """segments: [B, T, hop + overlap] -> samples [B, T * hop]."""
        batch, frames, _ = segments.shape
        body = segments[:, :, : self.hop]
        if self.overlap == 0:
            return body.reshape(batch, frames * self.hop)
        tails = torch.cat([self.context("tail", batch, segments).unsqueeze(1), segments[:, :-1, self.hop :]], dim=1)
        self.remember("tail", segments[:, -1, self.hop :])
        heads = body[:, :, : self.overlap] + tails
        return torch.cat([heads, body[:, :, self.overlap :]], dim=-1).reshape(batch, frames * self.hop)
