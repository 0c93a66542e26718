"""Re-express a trained model's latent in better-balanced coordinates without changing its output.

The shipped run's latent put 82 % of its variance on one direction (docs/training.md). A
residual VQ spends its codes where the Euclidean error is largest, so every layer refined
that one direction further and the others, which the decoder could use, stayed coarse:
more layers bought nothing. `whiten_latent` rotates the latent onto its principal axes and
scales axis i by s_i^-alpha (s_i its variance; alpha 0.5 whitens fully, 0.25 halves the
spread in log scale), folding the inverse into the decoder's input layer: the autoencoder
computes the same function, but the quantizer now sees the minor directions at a scale
where its codes land on them. The codebooks restart from k-means on the new latent.
"""

from __future__ import annotations

import torch

from codec.model import Codec
from codec.quantization import EMACodebook


@torch.no_grad()
def whiten_latent(model: Codec, samples: torch.Tensor, alpha: float, floor: float = 1e-4) -> torch.Tensor:
    """Re-parametrise model's latent as z' = P (z - mean) in place; returns the new variances.

    samples [B, S] estimate the latent's mean and covariance. Variances below `floor` times
    the largest are raised to it, so empty directions are not blown up.
    """
    z = model.encoder(samples).reshape(-1, model.cfg.latent_dim)
    mean = z.mean(0)
    variances, axes = torch.linalg.eigh(torch.cov((z - mean).T))
    variances = variances.clamp_min(variances.max() * floor)
    to_new = torch.diag(variances**-alpha) @ axes.T
    from_new = axes @ torch.diag(variances**alpha)
    encoder_out, decoder_in = model.encoder.output, model.decoder.input
    decoder_in.bias.copy_(decoder_in.bias + decoder_in.weight @ mean)
    decoder_in.weight.copy_(decoder_in.weight @ from_new)
    encoder_out.bias.copy_(to_new @ (encoder_out.bias - mean))
    encoder_out.weight.copy_(to_new @ encoder_out.weight)
    for layer in model.quantizer.layers:
        assert isinstance(layer, EMACodebook)  # a ModuleList yields plain Modules to the checker
        layer.initialized.fill_(False)  # k-means again, on the re-expressed latent
    return variances ** (1.0 - 2.0 * alpha)
