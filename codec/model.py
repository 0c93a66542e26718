"""The codec: causal encoder -> residual VQ -> causal decoder, all at the frame rate.

Encoder: each 20 ms frame is analysed with a window reaching 20 ms into the past
(a short-time Fourier transform, magnitude-compressed), then a trunk of causal ConvNeXt
blocks maps it to a latent vector. Decoder: a trunk of the same blocks at the frame rate,
then sub-pixel up-sampling stages with causal blocks at 200 and 800 steps a second, whose
finest steps emit 20-sample segments cross-faded (overlap-add) into the output. Every layer is causal, so the
same module runs offline on a whole signal or inside `streaming()` a frame at a time.
"""

from __future__ import annotations

import math
from typing import cast

import torch
from torch import nn

from codec.config import CodecConfig
from codec.modules import CausalFraming, ConvNeXtBlock, OverlapAdd
from codec.modules.dft import rfft_basis
from codec.modules.framing import crossfade_window
from codec.quantization import ResidualVectorQuantizer

_COMPRESSION = 0.3  # magnitude exponent of the analysis features (|X|^0.3 keeps quiet bins visible)


def _as_condition(denoise: torch.Tensor | float | bool, batch: int, frames: int, like: torch.Tensor) -> torch.Tensor:
    """Broadcast a denoise flag (scalar, [B] or [B, T]) to [B, T, 1]."""
    cond = torch.as_tensor(denoise, dtype=like.dtype, device=like.device)
    if cond.dim() == 1:
        cond = cond[:, None]
    return cond.expand(batch, frames).unsqueeze(-1)


class Encoder(nn.Module):
    def __init__(self, cfg: CodecConfig) -> None:
        super().__init__()
        self.framing = CausalFraming(cfg.analysis_window, cfg.hop)
        window = torch.hann_window(cfg.analysis_window, periodic=True)
        # Windowing folded into the DFT basis: one matrix product a frame.
        self.register_buffer("analysis", window[:, None] * rfft_basis(cfg.analysis_window), persistent=False)
        bins = cfg.analysis_window // 2 + 1
        self.input = nn.Linear(2 * bins, cfg.channels)
        self.blocks = nn.ModuleList(
            ConvNeXtBlock(cfg.channels, cfg.hidden_mult, cfg.kernel_size, film=cfg.denoise_conditioning) for _ in range(cfg.encoder_blocks)
        )
        self.norm = nn.LayerNorm(cfg.channels)
        self.output = nn.Linear(cfg.channels, cfg.latent_dim)

    def forward(self, samples: torch.Tensor, denoise: torch.Tensor | float = 0.0) -> torch.Tensor:
        """samples [B, T * hop] -> latent [B, T, latent_dim]."""
        return self.from_spectrum(self.framing(samples) @ self.analysis, denoise)

    def from_spectrum(self, spec: torch.Tensor, denoise: torch.Tensor | float = 0.0) -> torch.Tensor:
        """spec [B, T, Re | Im] of each Hann-windowed analysis frame -> latent [B, T, latent_dim]."""
        real, imag = spec.chunk(2, dim=-1)
        gain = (torch.sqrt(real * real + imag * imag) + 1e-5) ** (_COMPRESSION - 1.0)
        h = self.input(spec * gain.repeat(1, 1, 2))
        cond = _as_condition(denoise, h.shape[0], h.shape[1], h)
        for block in self.blocks:
            h = block(h, cond)
        return self.output(self.norm(h))


class Upsample(nn.Module):
    """Sub-pixel up-sampling in time: each step becomes `factor` steps of `out_channels`."""

    def __init__(self, in_channels: int, out_channels: int, factor: int) -> None:
        super().__init__()
        self.factor = factor
        self.proj = nn.Linear(in_channels, factor * out_channels)

    def forward(self, h: torch.Tensor) -> torch.Tensor:
        batch, steps, _ = h.shape
        return self.proj(h).reshape(batch, steps * self.factor, -1)


class Decoder(nn.Module):
    """Frame-rate trunk, then sub-pixel up-sampling stages down to short waveform segments.

    The trunk (50 Hz) carries the content; the up-sampling stages (200 Hz and 800 Hz with
    the default config) model the waveform locally with causal convolutions, which keeps
    the phase continuous from one step to the next. Each finest step emits
    hop / prod(factors) samples plus `synthesis_overlap` cross-faded into the next step.
    """

    def __init__(self, cfg: CodecConfig) -> None:
        super().__init__()
        film = cfg.denoise_conditioning
        self.input = nn.Linear(cfg.latent_dim, cfg.channels)
        self.blocks = nn.ModuleList(ConvNeXtBlock(cfg.channels, cfg.hidden_mult, cfg.kernel_size, film=film) for _ in range(cfg.decoder_blocks))
        self.stages = nn.ModuleList()
        channels = cfg.channels
        for factor, out_channels in zip(cfg.upsample_factors, cfg.upsample_channels):
            stage = nn.ModuleList([Upsample(channels, out_channels, factor)])
            stage.extend(ConvNeXtBlock(out_channels, cfg.hidden_mult, cfg.kernel_size, film=film) for _ in range(cfg.upsample_blocks))
            self.stages.append(stage)
            channels = out_channels
        self.norm = nn.LayerNorm(channels)
        step = cfg.hop // math.prod(cfg.upsample_factors)
        self.head = nn.Linear(channels, step + cfg.synthesis_overlap)
        self.register_buffer("window", crossfade_window(step, cfg.synthesis_overlap), persistent=False)
        self.overlap_add = OverlapAdd(step, cfg.synthesis_overlap)

    def forward(self, latent: torch.Tensor, denoise: torch.Tensor | float = 0.0) -> torch.Tensor:
        """latent [B, T, latent_dim] -> samples [B, T * hop]."""
        h = self.input(latent)
        cond = _as_condition(denoise, h.shape[0], h.shape[1], h)
        for block in self.blocks:
            h = block(h, cond)
        for stage in self.stages:
            upsample, blocks = cast(Upsample, cast(nn.ModuleList, stage)[0]), cast(nn.ModuleList, stage)[1:]
            h = upsample(h)
            cond = cond.repeat_interleave(upsample.factor, dim=1)
            for block in blocks:
                h = block(h, cond)
        return self.overlap_add(self.head(self.norm(h)) * self.window)


class Codec(nn.Module):
    def __init__(self, cfg: CodecConfig) -> None:
        super().__init__()
        self.cfg = cfg
        self.encoder = Encoder(cfg)
        self.quantizer = ResidualVectorQuantizer(cfg.latent_dim, cfg.n_quantizers, cfg.codebook_size)
        self.decoder = Decoder(cfg)

    def forward(
        self, samples: torch.Tensor, n_layers: torch.Tensor | None, denoise: torch.Tensor | float = 0.0
    ) -> tuple[torch.Tensor, torch.Tensor, dict[str, float]]:
        """Training pass: samples [B, T * hop] -> (reconstruction, commitment loss, RVQ stats).

        n_layers[b] layers quantize example b (quantizer dropout); None skips quantization
        (the autoencoder warm-up that gives k-means meaningful vectors to start from).
        """
        latent = self.encoder(samples, denoise)
        if n_layers is None:
            return self.decoder(latent, denoise), latent.new_zeros(()), {}
        quantized, _, commit, stats = self.quantizer(latent, n_layers)
        return self.decoder(quantized, denoise), commit, stats

    @torch.no_grad()
    def encode(self, samples: torch.Tensor, n_layers: int, denoise: torch.Tensor | float = 0.0) -> torch.Tensor:
        """samples [B, T * hop] -> codes [B, n_layers, T]."""
        return self.quantizer.encode(self.encoder(samples, denoise), n_layers)

    @torch.no_grad()
    def decode(self, codes: torch.Tensor, layer_counts: torch.Tensor | None = None, denoise: torch.Tensor | float = 0.0) -> torch.Tensor:
        """codes [B, K, T] -> samples [B, T * hop]; layer_counts [B, T] picks layers per frame."""
        return self.decoder(self.quantizer.decode(codes, layer_counts), denoise)

    def parameter_counts(self) -> dict[str, int]:
        def count(m: nn.Module) -> int:
            return sum(p.numel() for p in m.parameters())

        rvq_buffers = sum(cast(torch.Tensor, layer.codes).numel() for layer in self.quantizer.layers)
        return {
            "encoder": count(self.encoder),
            "quantizer": count(self.quantizer) + rvq_buffers,
            "decoder": count(self.decoder),
            "total": count(self) + rvq_buffers,
        }
