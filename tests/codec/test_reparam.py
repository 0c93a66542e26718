"""Latent re-parametrisation: the same autoencoder, a latent the quantizer sees evenly."""

from __future__ import annotations

import torch

from codec.train.reparam import whiten_latent
from tests.codec.conftest import SMALL, trained_like


def test_whitening_keeps_the_autoencoder_and_evens_the_latent() -> None:
    model = trained_like(SMALL, seed=3)
    x = torch.randn(4, SMALL.hop * 100) * 0.1
    with torch.no_grad():
        before = model.decoder(model.encoder(x))
    whiten_latent(model, x, alpha=0.5)
    with torch.no_grad():
        z = model.encoder(x).reshape(-1, SMALL.latent_dim)
        after = model.decoder(model.encoder(x))
    assert torch.allclose(after, before, atol=1e-5)
    assert torch.allclose(z.mean(0), torch.zeros(SMALL.latent_dim), atol=1e-4)
    assert torch.allclose(torch.cov(z.T), torch.eye(SMALL.latent_dim), atol=1e-3)
    assert not any(bool(layer.initialized) for layer in model.quantizer.layers)  # k-means again
