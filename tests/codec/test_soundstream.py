"""The soundstream family: causal layers, streaming == offline, stage counts, the shipped model."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from codec.config import SoundStreamConfig, parse_config
from codec.modules.causal_conv import CausalConv1d, CausalConvTranspose1d
from codec.modules.streaming import streaming
from codec.soundstream import SoundStreamCodec
from codec.streaming import StreamingDecoder, StreamingEncoder

# Lyra's shape, narrower: same strides, kernels, groups and dilations.
SMALL = SoundStreamConfig(channels=(8, 16, 32, 64), latent_dim=16, n_quantizers=12, codebook_size=16)


def small_soundstream(seed: int = 0) -> SoundStreamCodec:
    torch.manual_seed(seed)
    model = SoundStreamCodec(SMALL)
    with torch.no_grad():
        for p in model.parameters():
            p.normal_(0.0, 0.3)
        model.quantizer.codebooks.normal_(0.0, 1.0)
    return model.eval()


@pytest.fixture(scope="module")
def model() -> SoundStreamCodec:
    return small_soundstream()


def _chunks(total: int, cuts: list[int]) -> list[tuple[int, int]]:
    edges = sorted({0, total, *[c % total for c in cuts]})
    return list(zip(edges[:-1], edges[1:]))


def test_causal_conv_output_does_not_depend_on_the_future() -> None:
    torch.manual_seed(0)
    conv = CausalConv1d(3, 4, kernel_size=10, stride=5, dilation=1, groups=1).eval()
    x = torch.randn(1, 3, 40)
    y = conv(x)
    x2 = x.clone()
    x2[..., 20:] = torch.randn(1, 3, 20)
    assert torch.equal(conv(x2)[..., :4], y[..., :4])  # outputs 0..3 read inputs < 20 only


def test_transposed_conv_equals_the_full_transposed_convolution_trimmed() -> None:
    torch.manual_seed(0)
    layer = CausalConvTranspose1d(8, 4, kernel_size=10, stride=5, groups=2).eval()
    x = torch.randn(2, 8, 7)
    full = layer.conv(x)  # torch's, no state: (T - 1) s + k steps
    with torch.no_grad():
        assert torch.allclose(layer(x), full[..., : 7 * 5], atol=1e-6)


@settings(max_examples=12, deadline=None)
@given(cuts=st.lists(st.integers(1, 40), max_size=6))
def test_streaming_layers_equal_offline_for_any_chunking(cuts: list[int]) -> None:
    torch.manual_seed(1)
    down = CausalConv1d(4, 6, kernel_size=4, stride=2, groups=2).eval()
    up = CausalConvTranspose1d(6, 4, kernel_size=4, stride=2, groups=2).eval()
    x = torch.randn(2, 4, 40)
    with torch.no_grad():
        offline = up(down(x))
        with streaming(down, 2), streaming(up, 2):
            parts = [up(down(x[..., a * 2 : b * 2])) for a, b in _chunks(20, cuts)]
    assert torch.allclose(torch.cat(parts, dim=-1), offline, atol=1e-5)


@settings(max_examples=8, deadline=None)
@given(cuts=st.lists(st.integers(1, 11), max_size=4))
def test_codec_streaming_equals_offline_for_any_chunking(model: SoundStreamCodec, cuts: list[int]) -> None:
    hop, frames = SMALL.hop, 12
    x = torch.randn(2, frames * hop) * 0.1
    offline_codes = model.encode(x, 7)
    offline = model.decode(offline_codes)
    codes, audio = [], []
    with StreamingEncoder(model, 2) as enc, StreamingDecoder(model, 2) as dec:
        for a, b in _chunks(frames, cuts):
            c = enc.encode(x[:, a * hop : b * hop], 7)
            codes.append(c)
            audio.append(dec.decode(c))
    assert torch.equal(torch.cat(codes, dim=-1), offline_codes)
    assert torch.allclose(torch.cat(audio, dim=-1), offline, atol=1e-5)


def test_streams_of_a_batch_are_independent_and_reset_alone(model: SoundStreamCodec) -> None:
    hop = SMALL.hop
    x = torch.randn(2, 6 * hop) * 0.1
    alone = model.decode(model.encode(x[1:], 5))
    with StreamingEncoder(model, 2) as enc, StreamingDecoder(model, 2) as dec:
        first = dec.decode(enc.encode(x[:, : 3 * hop], 5))
        enc.reset([0])
        dec.reset([0])
        second = dec.decode(enc.encode(x[:, 3 * hop :], 5))
    assert torch.allclose(torch.cat([first, second], dim=-1)[1], alone[0], atol=1e-5)
    restarted = model.decode(model.encode(x[:1, 3 * hop :], 5))
    assert torch.allclose(second[0], restarted[0], atol=1e-5)


def test_each_frame_decodes_with_its_own_stage_count(model: SoundStreamCodec) -> None:
    x = torch.randn(1, 5 * SMALL.hop) * 0.1
    codes = model.encode(x, SMALL.n_quantizers)
    counts = torch.tensor([[1, 12, 4, 7, 2]])
    latent = model.quantizer.decode(codes, counts)
    for t, n in enumerate(counts[0].tolist()):
        assert torch.equal(latent[:, t], model.quantizer.decode(codes[:, :n, t : t + 1])[:, 0])


def test_more_stages_leave_less_of_the_latent(model: SoundStreamCodec) -> None:
    with torch.no_grad():
        z = model.encoder(torch.randn(1, 20 * SMALL.hop) * 0.1)
    codes = model.quantizer.encode(z, SMALL.n_quantizers)
    errors = [float(((z - model.quantizer.decode(codes[:, :n])) ** 2).mean()) for n in (1, 4, 12)]
    assert errors[0] > errors[1] > errors[2]


def test_config_round_trips_through_its_family() -> None:
    assert parse_config(SMALL.model_dump()) == SMALL
    assert parse_config({"name": "x"}).family == "ssc"  # configs saved before families existed
    with pytest.raises(ValueError):
        parse_config({"family": "nonesuch"})
    with pytest.raises(ValueError):
        SoundStreamConfig(strides=(16, 5, 2, 3))  # does not multiply to the hop


def test_shipped_default_model_is_this_family_at_lyra_rates_and_above() -> None:
    from codec.weights import DEFAULT_MODEL, load_model

    model, model_id = load_model()
    assert DEFAULT_MODEL == "soundstream16k-lyra2x" and model_id.startswith("soundstream16k-lyra2x-")
    cfg = model.cfg
    assert (cfg.family, cfg.n_quantizers, cfg.bits_per_code) == ("soundstream", 80, 4)
    assert [cfg.layers_for_kbps(k) for k in (3.2, 6.0, 9.2, 12.0, 16.0)] == [16, 30, 46, 60, 80]
    x = torch.from_numpy(np.sin(np.arange(4 * cfg.hop) * 0.05).astype(np.float32))[None] * 0.3
    y = model.decode(model.encode(x, 30))
    assert y.shape == x.shape and torch.isfinite(y).all()
