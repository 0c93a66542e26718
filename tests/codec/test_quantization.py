"""The RVQ's commitment loss: which reconstruction each example's latent is pulled towards."""

from __future__ import annotations

import torch

from codec.quantization import ResidualVectorQuantizer


def _quantizer(commitment: str) -> ResidualVectorQuantizer:
    torch.manual_seed(0)
    rvq = ResidualVectorQuantizer(dim=8, n_quantizers=4, codebook_size=256)
    rvq.commitment = commitment
    rvq.train()
    rvq(torch.randn(4, 300, 8), torch.full((4,), 4))  # k-means start on real vectors
    rvq.eval()  # no EMA moves below: the codes stay what the expected values use
    return rvq


def _reconstructions(rvq: ResidualVectorQuantizer, z: torch.Tensor, n_layers: torch.Tensor) -> list[torch.Tensor]:
    """q_k for k = 1..max layers, with each example's inactive layers left out."""
    codes = rvq.encode(z, int(n_layers.max()))
    out = []
    for k in range(1, codes.shape[1] + 1):
        counts = torch.minimum(n_layers, torch.tensor(k))[:, None].expand(-1, z.shape[1])
        out.append(rvq.decode(codes[:, :k], counts))
    return out


def test_final_commitment_pulls_only_towards_the_examples_own_reconstruction() -> None:
    rvq = _quantizer("final")
    z = torch.randn(3, 20, 8, requires_grad=True)
    n_layers = torch.tensor([1, 2, 4])
    _, _, commit, _ = rvq(z, n_layers)
    q = _reconstructions(rvq, z.detach(), n_layers)[-1]  # the last step keeps each example's n layers
    assert torch.allclose(commit, ((z.detach() - q) ** 2).mean(), atol=1e-6)
    commit.backward()
    assert torch.allclose(z.grad, 2 * (z.detach() - q) / z.numel(), atol=1e-7)


def test_all_layer_commitment_sums_every_active_layer() -> None:
    rvq = _quantizer("all")
    z = torch.randn(3, 20, 8)
    n_layers = torch.tensor([1, 2, 4])
    _, _, commit, _ = rvq(z, n_layers)
    expected = sum(((z - q_k) ** 2 * (n_layers > k)[:, None, None]).mean() for k, q_k in enumerate(_reconstructions(rvq, z, n_layers)))
    assert torch.allclose(commit, expected, atol=1e-6)
