"""The codec: causal encoder -> residual VQ -> causal decoder, all at the frame rate.

Encoder: each 20 ms frame is analysed with a window reaching 20 ms into the past
(a short-time Fourier transform, magnitude-compressed), then a trunk of causal ConvNeXt
blocks maps it to a latent vector. Decoder: a trunk of the same blocks predicts the
log-magnitude and phase of a 24 ms segment, an inverse FFT turns it into samples, and
segments are cross-faded (overlap-add) into the output. Every layer is causal, so the
same module runs offline on a whole signal or inside `streaming()` a frame at a time.
"""

from __future__ import annotations

import torch
from torch import nn

from codec.config import CodecConfig
from codec.modules import CausalFraming, ConvNeXtBlock, OverlapAdd
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
        self.register_buffer("window", torch.hann_window(cfg.analysis_window, periodic=True), persistent=False)
        bins = cfg.analysis_window // 2 + 1
        self.input = nn.Linear(2 * bins, cfg.channels)
        self.blocks = nn.ModuleList(
            ConvNeXtBlock(cfg.channels, cfg.hidden_mult, cfg.kernel_size, film=cfg.denoise_conditioning)
            for _ in range(cfg.encoder_blocks)
        )
        self.norm = nn.LayerNorm(cfg.channels)
        self.output = nn.Linear(cfg.channels, cfg.latent_dim)

    def forward(self, samples: torch.Tensor, denoise: torch.Tensor | float = 0.0) -> torch.Tensor:
        """samples [B, T * hop] -> latent [B, T, latent_dim]."""
        frames = self.framing(samples)
        spec = torch.fft.rfft(frames * self.window, dim=-1)
        spec = spec * (spec.abs() + 1e-5) ** (_COMPRESSION - 1.0)
        h = self.input(torch.cat([spec.real, spec.imag], dim=-1))
        cond = _as_condition(denoise, h.shape[0], h.shape[1], h)
        for block in self.blocks:
            h = block(h, cond)
        return self.output(self.norm(h))


class Decoder(nn.Module):
    def __init__(self, cfg: CodecConfig) -> None:
        super().__init__()
        self.segment = cfg.hop + cfg.synthesis_overlap
        self.input = nn.Linear(cfg.latent_dim, cfg.channels)
        self.blocks = nn.ModuleList(
            ConvNeXtBlock(cfg.channels, cfg.hidden_mult, cfg.kernel_size, film=cfg.denoise_conditioning)
            for _ in range(cfg.decoder_blocks)
        )
        self.norm = nn.LayerNorm(cfg.channels)
        self.head = nn.Linear(cfg.channels, 2 * (self.segment // 2 + 1))
        self.register_buffer("window", crossfade_window(cfg.hop, cfg.synthesis_overlap), persistent=False)
        self.overlap_add = OverlapAdd(cfg.hop, cfg.synthesis_overlap)

    def forward(self, latent: torch.Tensor, denoise: torch.Tensor | float = 0.0) -> torch.Tensor:
        """latent [B, T, latent_dim] -> samples [B, T * hop]."""
        h = self.input(latent)
        cond = _as_condition(denoise, h.shape[0], h.shape[1], h)
        for block in self.blocks:
            h = block(h, cond)
        log_mag, phase = self.head(self.norm(h)).chunk(2, dim=-1)
        mag = torch.exp(log_mag.clamp(max=7.0))
        segments = torch.fft.irfft(torch.polar(mag, phase), n=self.segment, dim=-1) * self.window
        return self.overlap_add(segments)


class Codec(nn.Module):
    def __init__(self, cfg: CodecConfig) -> None:
        super().__init__()
        self.cfg = cfg
        self.encoder = Encoder(cfg)
        self.quantizer = ResidualVectorQuantizer(cfg.latent_dim, cfg.n_quantizers, cfg.codebook_size, cfg.codebook_dim)
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
    def decode(
        self, codes: torch.Tensor, layer_counts: torch.Tensor | None = None, denoise: torch.Tensor | float = 0.0
    ) -> torch.Tensor:
        """codes [B, K, T] -> samples [B, T * hop]; layer_counts [B, T] picks layers per frame."""
        return self.decoder(self.quantizer.decode(codes, layer_counts), denoise)

    def parameter_counts(self) -> dict[str, int]:
        def count(m: nn.Module) -> int:
            return sum(p.numel() for p in m.parameters())

        rvq_buffers = sum(layer.codes.numel() for layer in self.quantizer.layers)
        return {
            "encoder": count(self.encoder),
            "quantizer": count(self.quantizer) + rvq_buffers,
            "decoder": count(self.decoder),
            "total": count(self) + rvq_buffers,
        }
