"""Residual vector quantizer: low-dimensional EMA codebooks, k-means start, dead-code restarts.

Each layer projects the residual (latent_dim) to a small codebook space (codebook_dim),
picks the nearest of `codebook_size` codes, and projects the code back. Codebooks follow
their assigned vectors by exponential moving averages (SoundStream, EnCodec); the
projections learn by gradient through a straight-through estimator.

Inference never projects twice: `refresh_tables()` folds each layer's projections into
two tables, `score` (distance terms in latent space) and `table` (the code's latent
vector), so encoding a layer is one matrix product and an argmin, and decoding any
number of layers is one gather and a sum.
"""

from __future__ import annotations

import torch
from torch import nn
from torch.nn import functional as F


class EMACodebook(nn.Module):
    def __init__(self, latent_dim: int, codebook_size: int, codebook_dim: int, decay: float = 0.99) -> None:
        super().__init__()
        self.project_in = nn.Linear(latent_dim, codebook_dim)
        self.project_out = nn.Linear(codebook_dim, latent_dim)
        self.decay = decay
        self.register_buffer("codes", torch.randn(codebook_size, codebook_dim))
        self.register_buffer("cluster_size", torch.ones(codebook_size))
        self.register_buffer("code_sum", self.codes.clone())
        self.register_buffer("initialized", torch.tensor(False))
        self.register_buffer("window_usage", torch.zeros(codebook_size))
        self.register_buffer("window_seen", torch.zeros(()))

    def nearest(self, projected: torch.Tensor) -> torch.Tensor:
        distances = (self.codes**2).sum(-1) - 2 * projected @ self.codes.t()
        return distances.argmin(-1)

    @torch.no_grad()
    def kmeans_init(self, projected: torch.Tensor, iterations: int = 10) -> None:
        n = self.codes.shape[0]
        picks = torch.randint(0, projected.shape[0], (n,), device=projected.device)
        centroids = projected[picks].clone()
        for _ in range(iterations):
            idx = ((centroids**2).sum(-1) - 2 * projected @ centroids.t()).argmin(-1)
            counts = torch.bincount(idx, minlength=n).to(projected.dtype)
            sums = torch.zeros_like(centroids).index_add_(0, idx, projected)
            filled = counts > 0
            centroids[filled] = sums[filled] / counts[filled, None]
        self.codes.copy_(centroids)
        self.code_sum.copy_(centroids)
        self.cluster_size.fill_(1.0)
        self.initialized.fill_(True)

    @torch.no_grad()
    def ema_update(self, projected: torch.Tensor, idx: torch.Tensor, window: float) -> int:
        """EMA step; then, once `window` vectors per code were seen, restart unused codes.

        The windowed rule adapts to how much data a layer gets (quantizer dropout feeds the
        fine layers a fraction of the batch): a code is dead when it won nothing among
        `window * codebook_size` vectors, and restarts on a random vector of this batch.
        """
        n = self.codes.shape[0]
        counts = torch.bincount(idx, minlength=n).to(projected.dtype)
        sums = torch.zeros_like(self.codes).index_add_(0, idx, projected)
        self.cluster_size.mul_(self.decay).add_(counts, alpha=1 - self.decay)
        self.code_sum.mul_(self.decay).add_(sums, alpha=1 - self.decay)
        total = self.cluster_size.sum()
        smoothed = (self.cluster_size + 1e-5) / (total + n * 1e-5) * total
        self.codes.copy_(self.code_sum / smoothed[:, None])
        self.window_usage.add_(counts)
        self.window_seen.add_(idx.numel())
        if float(self.window_seen) < window * n:
            return 0
        dead = self.window_usage == 0
        self.window_usage.zero_()
        self.window_seen.zero_()
        n_dead = int(dead.sum())
        if n_dead:
            picks = torch.randint(0, projected.shape[0], (n_dead,), device=projected.device)
            self.codes[dead] = projected[picks]
            self.code_sum[dead] = projected[picks]
            self.cluster_size[dead] = 1.0
        return n_dead


class ResidualVectorQuantizer(nn.Module):
    def __init__(self, latent_dim: int, n_quantizers: int, codebook_size: int, codebook_dim: int) -> None:
        super().__init__()
        self.n_quantizers = n_quantizers
        self.layers = nn.ModuleList(
            EMACodebook(latent_dim, codebook_size, codebook_dim) for _ in range(n_quantizers)
        )
        self.register_buffer("score", torch.zeros(n_quantizers, codebook_size, latent_dim), persistent=False)
        self.register_buffer("bias", torch.zeros(n_quantizers, codebook_size), persistent=False)
        self.register_buffer("table", torch.zeros(n_quantizers * codebook_size, latent_dim), persistent=False)
        self.codebook_size = codebook_size
        self.dead_window = 2.0
        self._tables_fresh = False

    # ---- training --------------------------------------------------------------------------------
    def forward(
        self, z: torch.Tensor, n_layers: torch.Tensor
    ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, dict[str, float]]:
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
        max_layers = int(n_layers.max())
        for k, layer in enumerate(self.layers[:max_layers]):
            active = (n_layers > k).to(z.dtype)[:, None, None]
            projected = layer.project_in(residual)
            flat = projected.reshape(-1, projected.shape[-1])
            if self.training and not bool(layer.initialized):
                layer.kmeans_init(flat.detach())
            idx = layer.nearest(flat.detach())
            code = layer.codes[idx].view_as(projected)
            commit = commit + ((projected - code.detach()) ** 2 * active).mean()
            quantized = layer.project_out(projected + (code - projected).detach())
            out = out + quantized * active
            residual = residual - quantized.detach() * active
            codes.append(idx.view(batch, frames))
            if self.training:
                used = (n_layers > k).repeat_interleave(frames)
                if used.any():
                    stats[f"restarts_{k}"] = float(layer.ema_update(flat.detach()[used], idx[used], self.dead_window))
                    stats[f"perplexity_{k}"] = _perplexity(idx[used], self.codebook_size)
        for _ in range(max_layers, self.n_quantizers):
            codes.append(torch.zeros(batch, frames, dtype=torch.long, device=z.device))
        return out, torch.stack(codes, dim=1), commit, stats

    # ---- inference -------------------------------------------------------------------------------
    @torch.no_grad()
    def refresh_tables(self) -> None:
        """Fold the projections into the look-up tables used by encode/decode."""
        for k, layer in enumerate(self.layers):
            w, b, c = layer.project_in.weight, layer.project_in.bias, layer.codes
            # argmin_c |W r + b - c|^2 = argmin_c (|c|^2 - 2 c.b) - 2 (c W) . r
            self.score[k] = -2 * c @ w
            self.bias[k] = (c**2).sum(-1) - 2 * c @ b
            self.table[k * self.codebook_size : (k + 1) * self.codebook_size] = layer.project_out(c)
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
            idx = torch.addmm(self.bias[k], residual, self.score[k].t()).argmin(-1)
            residual -= self.table[k * self.codebook_size + idx]
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
