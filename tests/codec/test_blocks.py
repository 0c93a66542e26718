"""ConvNeXtBlock: folding a fixed denoise condition keeps the block's function."""

from __future__ import annotations

import copy

import pytest
import torch

from codec.modules import ConvNeXtBlock


@pytest.mark.parametrize("cond", [0.0, 1.0])
def test_fold_for_inference_keeps_the_output(cond: float) -> None:
    torch.manual_seed(0)
    block = ConvNeXtBlock(24, 3, 7).eval()
    with torch.no_grad():
        for p in block.film.parameters():  # FiLM starts as the identity; make it matter
            p.normal_(0.0, 0.5)
        block.scale.normal_(0.0, 1.0)
    x = torch.randn(2, 15, 24)
    want = block(x, torch.full((2, 15, 1), cond))
    folded = copy.deepcopy(block)
    folded.fold_for_inference(cond)
    assert folded.film is None and folded.scale is None
    got = folded(x, torch.full((2, 15, 1), 1.0 - cond))  # the condition no longer enters
    assert torch.allclose(got, want, atol=1e-5)
    assert not torch.allclose(block(x, torch.full((2, 15, 1), 1.0 - cond)), want, atol=1e-3)
