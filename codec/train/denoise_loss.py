"""The denoise switch's losses: relative latent MSE, and a spectral loss through the frozen decoder.

The latent loss compares the switched-on encoder's latent with the base's latent of the clean
input. The decoded loss decodes that latent through the frozen quantizer (straight-through, a
call's number of stages) and decoder, and compares the audio with the base's decoding of the
clean input under the project's multi-resolution log-magnitude + log-mel terms
(`codec.train.losses.ReconstructionLoss`, its phase and waveform terms off): the target is what
the codec itself makes of clean speech, so the switch is never asked for what the frozen decoder
cannot give, and on a clean example (target: its own input) the loss is "change nothing".
"""

from __future__ import annotations

import torch

from codec.soundstream import SoundStreamCodec
from codec.train.losses import ReconstructionLoss


def relative_error(latent: torch.Tensor, target: torch.Tensor, weight: torch.Tensor | None = None) -> torch.Tensor:
    """MSE of latents [B, T, D] relative to the target's mean energy; `weight` [B] weighs examples."""
    error = (latent - target).pow(2).mean((1, 2))
    mean = error.mean() if weight is None else (error * weight).sum() / weight.sum()
    return mean / target.pow(2).mean().clamp(min=1e-8)


def decode_latent(model: SoundStreamCodec, latent: torch.Tensor, stages: int) -> torch.Tensor:
    """latent [B, T, D] -> audio [B, T * hop] through the frozen quantizer's first `stages`
    stages (straight-through gradient; 0: unquantized) and the frozen decoder."""
    if stages:
        counts = torch.full((latent.shape[0],), stages, dtype=torch.long, device=latent.device)
        latent = model.quantizer(latent, counts)[0]
    return model.decoder(latent)


class DecodedSpectralLoss:
    """Multi-resolution log-magnitude + spectral convergence + multi-scale log-mel L1 of decoded
    audio against a target decoding; clean examples weigh `clean_weight` (as in the latent loss)."""

    def __init__(self, sample_rate: int, clean_weight: float) -> None:
        self.terms = ReconstructionLoss(sample_rate, complex_sizes=(), weights={"complex": 0.0, "wave": 0.0})
        self.clean_weight = clean_weight

    def __call__(self, decoded: torch.Tensor, target: torch.Tensor, clean: torch.Tensor) -> torch.Tensor:
        """decoded, target [B, S]; clean [B] bool marks the clean examples."""
        total, weight = decoded.new_zeros(()), 0.0
        for mask, w in ((~clean, 1.0), (clean, self.clean_weight)):
            count = int(mask.sum())
            if count:  # ReconstructionLoss averages over its batch: weigh each part by its size
                total = total + w * count * self.terms(decoded[mask], target[mask])["total"]
                weight += w * count
        return total / weight
