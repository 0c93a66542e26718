"""Residual vector quantizer: EMA codebooks, k-means start, windowed dead-code restarts.

Layer k picks the code nearest to the residual left by layers < k and subtracts it, so
every added layer refines the same latent (SoundStream, EnCodec). Codebooks follow their
assigned vectors by exponential moving averages; the encoder sees the quantized latent
through a straight-through estimator and is pulled towards its codes by a commitment loss.

For inference `refresh_tables()` precomputes each code's squared norm and one flat table of
all codes, so encoding a layer is one `addmm` and an argmin, and decoding any per-frame
layer counts is one gather and a sum.
"""

from __future__ import annotations

from typing import cast

import torch
import torch.distributed as dist
from torch import nn


def _distributed() -> bool:
    return dist.is_available() and dist.is_initialized()


def all_reduce_sum(*tensors: torch.Tensor) -> None:
    """Sum over data-parallel ranks when training under torchrun; nothing otherwise."""
    if _distributed():
        for t in tensors:
            dist.all_reduce(t)


def _global_max(value: int, device: torch.device) -> int:
    if not _distributed():
        return value
    t = torch.tensor(value, device=device)
    dist.all_reduce(t, op=dist.ReduceOp.MAX)
    return int(t)


class EMACodebook(nn.Module):
    codes: torch.Tensor
    cluster_size: torch.Tensor
    code_sum: torch.Tensor
    initialized: torch.Tensor
    window_usage: torch.Tensor
    window_seen: torch.Tensor

    def __init__(self, dim: int, codebook_size: int, decay: float = 0.99) -> None:
        super().__init__()
        self.decay = decay
        self.register_buffer("codes", torch.randn(codebook_size, dim))
        self.register_buffer("cluster_size", torch.ones(codebook_size))
        self.register_buffer("code_sum", self.codes.clone())
        self.register_buffer("initialized", torch.tensor(False))
        self.register_buffer("window_usage", torch.zeros(codebook_size))
        self.register_buffer("window_seen", torch.zeros(()))

    def nearest(self, vectors: torch.Tensor) -> torch.Tensor:
        distances = (self.codes**2).sum(-1) - 2 * vectors @ self.codes.t()
        return distances.argmin(-1)

    @torch.no_grad()
    def kmeans_init(self, vectors: torch.Tensor, iterations: int = 10) -> None:
        n = self.codes.shape[0]
        picks = torch.randint(0, vectors.shape[0], (n,), device=vectors.device)
        centroids = vectors[picks].clone()
        for _ in range(iterations):
            idx = ((centroids**2).sum(-1) - 2 * vectors @ centroids.t()).argmin(-1)
            counts = torch.bincount(idx, minlength=n).to(vectors.dtype)
            sums = torch.zeros_like(centroids).index_add_(0, idx, vectors)
            filled = counts > 0
            centroids[filled] = sums[filled] / counts[filled, None]
        self.codes.copy_(centroids)
        self.code_sum.copy_(centroids)
        self.cluster_size.fill_(1.0)
        self.initialized.fill_(True)

    @torch.no_grad()
    def ema_update(self, vectors: torch.Tensor, idx: torch.Tensor, window: float) -> int:
        """EMA step; then, once `window` vectors per code were seen, restart unused codes.

        The windowed rule adapts to how much data a layer gets (quantizer dropout feeds the
        fine layers a fraction of the batch): a code is dead when it won nothing among
        `window * codebook_size` vectors, and restarts on a random vector of this batch.
        """
        n = self.codes.shape[0]
        counts = torch.bincount(idx, minlength=n).to(vectors.dtype)
        sums = torch.zeros_like(self.codes).index_add_(0, idx, vectors)
        all_reduce_sum(counts, sums)  # data-parallel training: the EMA sees every rank's batch
        self.cluster_size.mul_(self.decay).add_(counts, alpha=1 - self.decay)
        self.code_sum.mul_(self.decay).add_(sums, alpha=1 - self.decay)
        total = self.cluster_size.sum()
        smoothed = (self.cluster_size + 1e-5) / (total + n * 1e-5) * total
        self.codes.copy_(self.code_sum / smoothed[:, None])
        self.window_usage.add_(counts)
        self.window_seen.add_(counts.sum())
        if float(self.window_seen) < window * n:
            return 0
        dead = self.window_usage == 0
        self.window_usage.zero_()
        self.window_seen.zero_()
        n_dead = int(dead.sum())
        if n_dead and vectors.shape[0]:
            picks = torch.randint(0, vectors.shape[0], (n_dead,), device=vectors.device)
            self.codes[dead] = vectors[picks]
            self.code_sum[dead] = vectors[picks]
            self.cluster_size[dead] = 1.0
        return n_dead


class ResidualVectorQuantizer(nn.Module):
    norms: torch.Tensor
    table: torch.Tensor

    def __init__(self, dim: int, n_quantizers: int, codebook_size: int) -> None:
        super().__init__()
        self.n_quantizers = n_quantizers
        self.layers = nn.ModuleList(EMACodebook(dim, codebook_size) for _ in range(n_quantizers))
        self.register_buffer("norms", torch.zeros(n_quantizers, codebook_size), persistent=False)
        self.register_buffer("table", torch.zeros(n_quantizers * codebook_size, dim), persistent=False)
        self.codebook_size = codebook_size
        self.dead_window = 2.0
        # "all": each active layer k adds |z - q_k|^2, so the coarse terms (largest) pull z
        # onto layer 0's codes; "final": only |z - q_n|^2 for the example's n layers.
        self.commitment: str = "all"
        self._tables_fresh = False

    # ---- training --------------------------------------------------------------------------------
    def forward(self, z: torch.Tensor, n_layers: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, dict[str, float]]:
        """Quantize z [B, T, D] with n_layers[b] layers for example b (quantizer dropout).

        Returns the quantized latent (straight-through), codes [B, N_q, T], the commitment
        loss, and per-layer statistics (codebook perplexity, restarted codes).
        """
        self._tables_fresh = False
        batch, frames, dim = z.shape
        residual = z
        out = torch.zeros_like(z)
        codes = []
        commit = z.new_zeros(())
        stats: dict[str, float] = {}
        # Every data-parallel rank must run the same layers (their EMA statistics are summed).
        max_layers = _global_max(int(n_layers.max()), z.device)
        for k, layer in enumerate(self.codebooks()[:max_layers]):
            active = (n_layers > k).to(z.dtype)[:, None, None]
            flat = residual.detach().reshape(-1, dim)
            if self.training and not bool(layer.initialized):
                layer.kmeans_init(flat)
            idx = layer.nearest(flat)
            code = layer.codes[idx].view_as(residual)
            if self.commitment == "all":
                commit = commit + ((residual - code) ** 2 * active).mean()
            out = out + code * active
            residual = residual - code * active
            codes.append(idx.view(batch, frames))
            if self.training:
                used = (n_layers > k).repeat_interleave(frames)
                stats[f"restarts_{k}"] = float(layer.ema_update(flat[used], idx[used], self.dead_window))
                if used.any():
                    stats[f"perplexity_{k}"] = _perplexity(idx[used], self.codebook_size)
        if self.commitment == "final":
            commit = (residual**2).mean()  # what the example's last active layer left
        for _ in range(max_layers, self.n_quantizers):
            codes.append(torch.zeros(batch, frames, dtype=torch.long, device=z.device))
        quantized = z + (out - z).detach()  # straight-through: the decoder's gradient reaches z
        return quantized, torch.stack(codes, dim=1), commit, stats

    def codebooks(self) -> list[EMACodebook]:
        """The stages' codebooks, coarse first (`self.layers`, typed)."""
        return [cast(EMACodebook, layer) for layer in self.layers]

    # ---- inference -------------------------------------------------------------------------------
    @torch.no_grad()
    def refresh_tables(self) -> None:
        """Fold the projections into the look-up tables used by encode/decode."""
        for k, layer in enumerate(self.codebooks()):
            self.norms[k] = (layer.codes**2).sum(-1)
            self.table[k * self.codebook_size : (k + 1) * self.codebook_size] = layer.codes
        self._tables_fresh = True

    def _ensure_tables(self) -> None:
        if not self._tables_fresh or self.training:
            self.refresh_tables()

    @torch.no_grad()
    def encode(self, z: torch.Tensor, n_layers: int) -> torch.Tensor:
        """z [B, T, D] -> codes [B, n_layers, T]."""
        self._ensure_tables()
        residual = z.reshape(-1, z.shape[-1]).clone()
        codes = []
        for k in range(n_layers):
            codes_k = self.table[k * self.codebook_size : (k + 1) * self.codebook_size]
            idx = torch.addmm(self.norms[k], residual, codes_k.t(), alpha=-2.0).argmin(-1)
            residual -= codes_k[idx]
            codes.append(idx)
        return torch.stack(codes, dim=0).view(n_layers, z.shape[0], z.shape[1]).transpose(0, 1)

    @torch.no_grad()
    def decode(self, codes: torch.Tensor, layer_counts: torch.Tensor | None = None) -> torch.Tensor:
        """codes [B, K, T] (K <= N_q) -> latent [B, T, D]; frame (b, t) uses layer_counts[b, t] layers."""
        self._ensure_tables()
        batch, layers, frames = codes.shape
        if layers > self.n_quantizers:
            raise ValueError(f"{layers} layers given, the model has {self.n_quantizers}")
        offsets = torch.arange(layers, device=codes.device)[None, :, None] * self.codebook_size
        vectors = self.table[codes + offsets]  # [B, K, T, D]
        if layer_counts is not None:
            keep = torch.arange(layers, device=codes.device)[None, :, None] < layer_counts[:, None, :]
            vectors = vectors * keep[..., None].to(vectors.dtype)
        return vectors.sum(1)


def _perplexity(idx: torch.Tensor, n: int) -> float:
    p = torch.bincount(idx, minlength=n).float()
    p = p / p.sum()
    return float(torch.exp(-(p * torch.log(p + 1e-10)).sum()))
