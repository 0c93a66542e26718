"""A residual VQ with fixed codebooks, in the reference's arithmetic order.

SoundStream's quantizer as Lyra v2 runs it: stage k picks the codeword nearest (summed squared
differences, first index on ties) to what stages < k left, and subtracts it. Decoding adds the
chosen codewords stage by stage from stage 0. Done in this order in float32, the indices and
the decoded vectors are bit-exact with the reference interpreter
(tests/codec/test_lyra_reference.py), which a norm-expanded distance (|c|^2 - 2 r.c) or a
tree-summed decode is not.

The codebooks are buffers (nothing here trains them); `table` and `norms` are the flat views
that the ONNX engine's NumPy quantizer reads, as for `ResidualVectorQuantizer`.
"""

from __future__ import annotations

import torch
from torch import nn


class SequentialResidualQuantizer(nn.Module):
    codebooks: torch.Tensor  # [stages, codebook_size, dim]

    def __init__(self, dim: int, n_quantizers: int, codebook_size: int) -> None:
        super().__init__()
        self.n_quantizers = n_quantizers
        self.codebook_size = codebook_size
        self.register_buffer("codebooks", torch.zeros(n_quantizers, codebook_size, dim))

    # The flat views `codec.onnx_runtime` reads (the trainable quantizer keeps them as tables).
    @property
    def table(self) -> torch.Tensor:
        return self.codebooks.reshape(-1, self.codebooks.shape[-1])

    @property
    def norms(self) -> torch.Tensor:
        return (self.codebooks**2).sum(-1)

    def refresh_tables(self) -> None:
        """Nothing to fold: the views above are always current."""

    def forward(self, z: torch.Tensor, n_layers: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, dict[str, float]]:
        """Training-shaped pass (frozen codebooks): z [B, T, D], n_layers[b] stages for example b
        -> (quantized latent with a straight-through gradient, codes [B, N_q, T], commitment, {})."""
        codes = self.encode(z.detach(), self.n_quantizers)
        counts = n_layers[:, None].expand(z.shape[0], z.shape[1])
        quantized = self.decode(codes, counts)
        commit = ((z - quantized) ** 2).mean()
        return z + (quantized - z).detach(), codes, commit, {}

    @torch.no_grad()
    def encode(self, z: torch.Tensor, n_layers: int) -> torch.Tensor:
        """z [B, T, D] -> codes [B, n_layers, T]."""
        if not 1 <= n_layers <= self.n_quantizers:
            raise ValueError(f"{n_layers} stages asked, the model has 1..{self.n_quantizers}")
        residual = z.reshape(-1, z.shape[-1])
        codes = []
        for k in range(n_layers):
            book = self.codebooks[k]
            idx = ((residual[:, None, :] - book[None]) ** 2).sum(-1).argmin(-1)
            chosen = book[idx]
            # The reference's straight-through form, kept for its float rounding.
            residual = residual - (residual + (chosen - residual))
            codes.append(idx)
        return torch.stack(codes, dim=0).view(n_layers, z.shape[0], z.shape[1]).transpose(0, 1)

    @torch.no_grad()
    def decode(self, codes: torch.Tensor, layer_counts: torch.Tensor | None = None) -> torch.Tensor:
        """codes [B, K, T] (K <= N_q) -> latent [B, T, D]; frame (b, t) uses layer_counts[b, t] stages."""
        batch, layers, frames = codes.shape
        if layers > self.n_quantizers:
            raise ValueError(f"{layers} stages given, the model has {self.n_quantizers}")
        vectors = self.codebooks[torch.arange(layers, device=codes.device)[None, :, None], codes]  # [B, K, T, D]
        if layer_counts is not None:
            keep = torch.arange(layers, device=codes.device)[None, :, None] < layer_counts[:, None, :]
            vectors = vectors * keep[..., None].to(vectors.dtype)
        out = vectors[:, 0].clone()
        for k in range(1, layers):  # stage by stage: the reference's summation order
            out += vectors[:, k]
        return out
