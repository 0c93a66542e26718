from __future__ import annotations

import pytest
import torch

from codec.config import CodecConfig
from codec.model import Codec

SMALL = CodecConfig(channels=32, encoder_blocks=2, decoder_blocks=2, latent_dim=16, n_quantizers=8, codebook_size=256)


def trained_like(cfg: CodecConfig = SMALL, seed: int = 0) -> Codec:
    """A small random model in eval mode whose codebooks were initialised on real latents."""
    torch.manual_seed(seed)
    model = Codec(cfg)
    model.train()
    with torch.no_grad():
        x = torch.randn(8, cfg.hop * 200) * 0.1  # more vectors than codes: no duplicate codes
        model(x, torch.full((8,), cfg.n_quantizers))
    return model.eval()


@pytest.fixture(scope="session")
def small_model() -> Codec:
    return trained_like()
