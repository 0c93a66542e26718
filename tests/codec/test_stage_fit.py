"""Extra residual stages (`codec.stage_fit`): k-means hygiene, determinism, and the base
stages staying bit-identical (in a small model and in the shipped extended default)."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from codec.audio_io import load_audio
from codec.stage_fit import extend_from_data, extend_model, fit_stages, kmeans, residual_after
from codec.weights import DEFAULT_MODEL, load_model
from tests.codec.test_soundstream import SMALL, small_soundstream

SAMPLE = "codec/samples/speech.wav"


def test_kmeans_finds_separated_clusters_and_restarts_empty_codes() -> None:
    gen = torch.Generator().manual_seed(0)
    means = torch.tensor([[5.0, 0.0], [-5.0, 0.0], [0.0, 5.0]])
    x = torch.cat([m + 0.1 * torch.randn(200, 2, generator=gen) for m in means])
    centroids = kmeans(x, 3, 10, torch.Generator().manual_seed(1))
    found = sorted(map(tuple, centroids.round().tolist()))
    assert found == sorted(map(tuple, means.tolist()))
    # More codes than distinct vectors: empty codes restart on vectors instead of staying put.
    few = torch.tensor([[0.0, 0.0], [1.0, 0.0], [0.0, 1.0]]).repeat(10, 1)
    many = kmeans(few, 6, 3, torch.Generator().manual_seed(0))
    assert torch.isfinite(many).all() and {tuple(c) for c in many.tolist()} <= {tuple(v) for v in few.tolist()}


def test_stage_fit_is_deterministic_and_each_stage_reduces_the_residual() -> None:
    gen = torch.Generator().manual_seed(0)
    train, held = torch.randn(3000, 8, generator=gen), torch.randn(500, 8, generator=gen)
    a = fit_stages(train, held, 8.0, 4, 3, 5, torch.Generator().manual_seed(7))
    b = fit_stages(train, held, 8.0, 4, 3, 5, torch.Generator().manual_seed(7))
    assert torch.equal(a.codebooks, b.codebooks) and a.heldout_relative_mse == b.heldout_relative_mse
    assert a.codebooks.shape == (3, 16, 8)
    assert all(later < earlier for earlier, later in zip(a.heldout_relative_mse, a.heldout_relative_mse[1:]))


def _same_prefix(base, extended, audio: torch.Tensor) -> None:
    n = base.cfg.n_quantizers
    assert torch.equal(extended.quantizer.codebooks[:n], base.quantizer.codebooks)
    base_state, ext_state = base.state_dict(), extended.state_dict()
    assert all(torch.equal(v, ext_state[k]) for k, v in base_state.items() if k != "quantizer.codebooks")
    codes = base.encode(audio, n)
    assert torch.equal(extended.encode(audio, n), codes)
    assert torch.equal(extended.encode(audio, extended.cfg.n_quantizers)[:, :n], codes)
    assert torch.equal(extended.decode(codes), base.decode(codes))


def test_extended_small_model_keeps_its_stages_bit_identical() -> None:
    base = small_soundstream()
    books = torch.randn(4, 16, SMALL.latent_dim, generator=torch.Generator().manual_seed(3)) * 0.1
    extended = extend_model(base, books, "small-x")
    assert extended.cfg.n_quantizers == SMALL.n_quantizers + 4 and extended.cfg.name == "small-x"
    audio = torch.randn(1, 8 * SMALL.hop, generator=torch.Generator().manual_seed(4)) * 0.1
    _same_prefix(base, extended, audio)
    with pytest.raises(ValueError, match="do not fit"):
        extend_model(base, torch.zeros(2, 256, SMALL.latent_dim), "wrong")


def test_shipped_default_is_lyra_with_stages_appended_bit_identically() -> None:
    extended, _ = load_model(name=DEFAULT_MODEL)
    base, _ = load_model(name="soundstream16k-lyra2")
    assert extended.cfg.kbps_for_layers(extended.cfg.n_quantizers) >= 16.0
    assert extended.cfg.model_copy(update={"name": base.cfg.name, "n_quantizers": base.cfg.n_quantizers}) == base.cfg
    audio, _ = load_audio(SAMPLE, base.cfg.sample_rate)
    n = len(audio) // base.cfg.hop * base.cfg.hop
    _same_prefix(base, extended, torch.from_numpy(np.ascontiguousarray(audio[:n], dtype=np.float32))[None])


def test_extend_from_data_appends_fitted_stages_deterministically() -> None:
    base = small_soundstream()
    pcm = (np.random.default_rng(0).standard_normal(40 * 250 * SMALL.hop) * 3000).astype(np.int16)
    runs = [extend_from_data(base, pcm, pcm, 4, 2, "small-x", frames=2_000, iterations=2, seed=5) for _ in range(2)]
    assert torch.equal(runs[0].model.quantizer.codebooks, runs[1].model.quantizer.codebooks)
    assert runs[0].model.cfg.n_quantizers == SMALL.n_quantizers + 2
    curve = runs[0].fit.heldout_relative_mse
    assert len(curve) == 3 and curve[2] < curve[0]
    with pytest.raises(ValueError, match="4-bit"):
        extend_from_data(base, pcm, pcm, 8, 1, "small-x", frames=500, iterations=1)
    for stages in (0, 256 - SMALL.n_quantizers):
        with pytest.raises(ValueError, match="at most 255"):
            extend_from_data(base, pcm, pcm, 4, stages, "small-x", frames=500, iterations=1)


def test_residual_after_is_what_the_quantizer_leaves() -> None:
    base = small_soundstream()
    z = torch.randn(50, SMALL.latent_dim, generator=torch.Generator().manual_seed(2))
    q = base.quantizer.decode(base.quantizer.encode(z[None], SMALL.n_quantizers))[0]
    assert torch.equal(residual_after(base.quantizer, z), z - q)
