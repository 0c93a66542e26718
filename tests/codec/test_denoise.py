"""The soundstream family's denoise switch: off is the base model bit for bit (torch offline,
streaming and ONNX), on streams as it runs offline, and its trainer logs, resumes exactly and
ships an overlay on its base; all of it also with the switch's temporal context."""

from __future__ import annotations

import csv
import json
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from codec.config import SoundStreamConfig
from codec.errors import WeightsError
from codec.soundstream import SoundStreamCodec
from codec.streaming import StreamingEncoder
from codec.train.denoise import TrainConfig, conditioned_copy, export, main, model_from_run, switch_state, train
from codec.train.denoise_loss import DecodedSpectralLoss, decode_latent
from codec.weights import load_model, save_model

BASE = SoundStreamConfig(name="tiny", channels=(8, 16, 32, 64), latent_dim=16, n_quantizers=12, codebook_size=16)


def _base(seed: int = 0) -> SoundStreamCodec:
    torch.manual_seed(seed)
    model = SoundStreamCodec(BASE)
    with torch.no_grad():
        for p in model.parameters():
            p.normal_(0.0, 0.3)
        model.quantizer.codebooks.normal_(0.0, 1.0)
    return model.eval()


def _switched(base: SoundStreamCodec, adapter: int = 4, context: int = 0) -> SoundStreamCodec:
    """The base with a switch whose every tensor is nonzero (a switch that does something)."""
    model = conditioned_copy(base, adapter, context=context)
    with torch.no_grad():
        for p in model.encoder.conditioning.parameters():  # type: ignore[union-attr]
            p.normal_(0.0, 0.2)
    return model


@pytest.fixture(scope="module", params=[0, 3], ids=["pointwise", "context"])
def pair(request) -> tuple[SoundStreamCodec, SoundStreamCodec]:
    """The base and a switched model: the pointwise switch, and one with a temporal context."""
    base = _base()
    return base, _switched(base, context=request.param)


def _audio(frames: int, batch: int = 2, hop: int = 320) -> torch.Tensor:
    return torch.randn(batch, frames * hop, generator=torch.Generator().manual_seed(5)) * 0.3


def test_switch_off_is_the_base_bit_for_bit_offline_and_streaming(pair) -> None:
    base, model = pair
    x = _audio(6)
    with torch.no_grad():
        assert torch.equal(model.encoder(x, 0.0), base.encoder(x))
        assert torch.equal(model.encoder(x, torch.zeros(2, 6)), base.encoder(x))
        assert not torch.allclose(model.encoder(x, 1.0), base.encoder(x), atol=1e-3)  # on does something
    codes = base.encode(x, 12)
    assert torch.equal(model.encode(x, 12, denoise=0.0), codes)
    assert torch.equal(model.decode(codes), base.decode(codes))  # the decoder takes no flag
    with StreamingEncoder(model, 2) as enc:
        streamed = torch.cat([enc.encode(x[:, t * 320 : (t + 2) * 320], 12, 0.0) for t in range(0, 6, 2)], -1)
    assert torch.equal(streamed, codes)


def test_per_frame_flag_streams_as_it_runs_offline(pair) -> None:
    _, model = pair
    x = _audio(8)
    flag = torch.tensor([[0, 1, 1, 0, 1, 0, 0, 1], [1, 1, 0, 0, 0, 1, 1, 1]], dtype=torch.float32)
    with torch.no_grad():
        offline = model.encoder(x, flag)
        # A frame before the first one switched on is the base's; a causal switch leaves the past alone.
        assert torch.equal(offline[0, 0], model.encoder(x, 0.0)[0, 0])
    with StreamingEncoder(model, 2) as enc, torch.no_grad():
        streamed = torch.cat([model.quantizer.decode(enc.encode(x[:, t * 320 : (t + 1) * 320], 12, flag[:, t : t + 1])) for t in range(8)], 1)
    torch.testing.assert_close(streamed, model.quantizer.decode(model.quantizer.encode(offline, 12)), atol=1e-5, rtol=0)


def test_onnx_graphs_off_and_on_match_torch(pair, tmp_path, monkeypatch) -> None:
    """One graph a switch value, one state: codes as the torch stream gives them, frame by frame
    (the shipped model's switched-off graph against its base's: the last test)."""
    pytest.importorskip("onnxruntime")
    from codec.onnx_runtime import OnnxStreamingEncoder

    monkeypatch.setenv("SSVOIP_CACHE", str(tmp_path))
    base, model = pair
    frames = 40  # past the temporal context's longest reach (2 x 16 steps back), so all its state is read
    x = _audio(frames).numpy()
    flags = [float((t // 3) % 2) for t in range(frames)]
    onnx_model = OnnxStreamingEncoder(model, "tiny-switch", batch_size=2)
    with StreamingEncoder(model, 2) as enc, StreamingEncoder(base, 2) as ref:
        for t, flag in enumerate(flags):
            frame = x[:, t * 320 : (t + 1) * 320]
            got = onnx_model.encode(frame, 12, flag)
            assert np.array_equal(got, enc.encode(frame, 12, flag).numpy()), t
            if t == 0:  # the switch off, before it was ever on: the base's codes exactly
                assert np.array_equal(got, ref.encode(frame, 12).numpy())


def test_config_refuses_adapters_without_the_switch() -> None:
    with pytest.raises(ValueError, match="denoise_adapter_channels"):
        SoundStreamConfig(denoise_adapter_channels=8)
    assert SoundStreamConfig(denoise_conditioning=True, denoise_adapter_channels=8).denoise_adapter_channels == 8


def test_config_refuses_a_context_without_adapters_and_saves_none_when_absent() -> None:
    with pytest.raises(ValueError, match="denoise_context_channels"):
        SoundStreamConfig(denoise_conditioning=True, denoise_context_channels=8)
    with_context = SoundStreamConfig(denoise_conditioning=True, denoise_adapter_channels=8, denoise_context_channels=4)
    assert with_context.model_dump()["denoise_context_channels"] == 4
    # A switch without one saves the config it saved before the field existed (model ids stay).
    assert "denoise_context_channels" not in SoundStreamConfig(denoise_conditioning=True, denoise_adapter_channels=8).model_dump()


_CONTEXT_PAIR = (_base(), _switched(_base(), context=3))


@settings(max_examples=10, deadline=None)
@given(cuts=st.lists(st.integers(1, 39), max_size=5), flags=st.lists(st.booleans(), min_size=40, max_size=40))
def test_context_switch_streams_as_offline_for_any_chunking_and_flags(cuts: list[int], flags: list[bool]) -> None:
    """Any chunking of the stream and any flag sequence (switched on after any number of frames
    off): the streamed latent is the offline one; where the flag is off it is the base's."""
    base, model = _CONTEXT_PAIR
    frames = 40
    x = _audio(frames)
    flag = torch.tensor([flags, flags[::-1]], dtype=torch.float32)
    edges = sorted({0, frames, *[c % frames for c in cuts]})
    with torch.no_grad():
        offline = model.encoder(x, flag)
        with StreamingEncoder(model, 2):
            streamed = torch.cat([model.encoder(x[:, a * 320 : b * 320], flag[:, a:b]) for a, b in zip(edges[:-1], edges[1:])], 1)
    torch.testing.assert_close(streamed, offline, atol=1e-5, rtol=0)
    if not any(flags):
        assert torch.equal(offline[0], base.encoder(x)[0])


def test_context_reaches_frames_the_pointwise_switch_cannot() -> None:
    """A change in the first frame moves the switched-on latent 30 frames later through the
    temporal context (63 steps of reach) and not through the base or the pointwise switch."""
    base = _base()
    x = _audio(40)
    changed = x.clone()
    changed[:, :320] = 0.0
    with torch.no_grad():
        for context, reaches in ((0, False), (3, True)):
            model = _switched(base, context=context)
            later = model.encoder(x, 1.0)[:, 30:], model.encoder(changed, 1.0)[:, 30:]
            assert torch.equal(*later) is not reaches, context
        assert torch.equal(base.encoder(x)[:, 30:], base.encoder(changed)[:, 30:])


def test_a_fresh_context_starts_as_the_switch_it_extends() -> None:
    """A context added to a trained pointwise switch (its output zero-initialised) changes nothing
    until it is trained: step 0 of a warm start is the switch it starts from, bit for bit."""
    base = _base()
    pointwise = _switched(base)
    extended = conditioned_copy(base, 4, context=3)
    extended.load_state_dict(switch_state(pointwise), strict=False)
    x = _audio(8)
    with torch.no_grad():
        assert torch.equal(extended.encoder(x, 1.0), pointwise.encoder(x, 1.0))


def test_overlay_loads_on_its_base_and_refuses_another(tmp_path: Path) -> None:
    from codec.weights import save_overlay

    base = _base()
    save_model(base, tmp_path, dtype=torch.float32)
    loaded_base, _ = load_model(tmp_path, "tiny")
    assert isinstance(loaded_base, SoundStreamCodec)
    model = _switched(loaded_base)
    model_id = save_overlay(model, tmp_path, "tinyd", "tiny")
    meta = json.loads((tmp_path / "tinyd.json").read_text())
    assert meta["overlay_on"]["name"] == "tiny" and (tmp_path / "tinyd.pt").stat().st_size < (tmp_path / "tiny.pt").stat().st_size
    again, again_id = load_model(tmp_path, "tinyd")
    assert again_id == model_id and again.cfg.denoise_conditioning
    x = _audio(3)
    with torch.no_grad():
        assert torch.equal(again.encoder(x, 1.0), model.encoder(x, 1.0))
    with pytest.raises(ValueError, match="only new tensors"):
        save_overlay(_switched(_base(seed=1)), tmp_path, "bad", "tiny")
    save_model(_base(seed=1), tmp_path, dtype=torch.float32)  # another "tiny" replaces the base
    with pytest.raises(WeightsError, match="overlays tiny"):
        load_model(tmp_path, "tinyd")


def _tiny_data(folder: Path) -> None:
    rng = np.random.default_rng(0)
    t = np.arange(16000 * 3) / 16000
    speechy = 0.3 * np.sin(2 * np.pi * 180 * t * (1 + 0.1 * np.sin(3 * t))) * (0.5 + 0.5 * np.sin(2 * np.pi * 2 * t)) + 0.01 * rng.standard_normal(t.size)
    folder.mkdir()
    np.save(folder / "speech.npy", (speechy * 32767).astype(np.int16))
    np.save(folder / "speech_val.npy", (speechy[::-1] * 32767).astype(np.int16))
    np.save(folder / "music.npy", (rng.standard_normal(t.size) * 3000).astype(np.int16))


@pytest.mark.parametrize("context", [0, 3], ids=["pointwise", "context"])
def test_tiny_training_logs_resumes_exactly_and_exports(tmp_path: Path, context: int) -> None:
    _tiny_data(tmp_path / "data")
    cfg = TrainConfig(steps=4, batch=3, seconds=0.2, adapter=4, context=context, val_examples=3, eval_every=2, lr=1e-2)
    whole = train(tmp_path / "data", tmp_path / "whole", cfg, base=_base(), log_every=1)
    rows = list(csv.DictReader((tmp_path / "whole" / "log.csv").open()))
    assert [int(r["step"]) for r in rows] == [1, 2, 3, 4] and rows[-1]["val_noisy_on"] and np.isfinite(float(rows[-1]["loss"]))
    train(tmp_path / "data", tmp_path / "split", cfg, base=_base(), until=2, log_every=1)
    resumed = train(tmp_path / "data", tmp_path / "split", cfg, base=_base(), log_every=1)
    assert [int(r["step"]) for r in csv.DictReader((tmp_path / "split" / "log.csv").open())] == [1, 2, 3, 4]
    for key, value in switch_state(whole).items():
        assert torch.equal(value, switch_state(resumed)[key]), key
    assert any(v.abs().sum() > 0 for v in switch_state(whole).values())  # it learnt something
    if context:  # the context learnt too (its output started at zero)
        assert any(v.abs().sum() > 0 for k, v in switch_state(whole).items() if ".context.out." in k)

    weights = tmp_path / "weights"
    save_model(_base(), weights, dtype=torch.float32)
    summary = export(tmp_path / "whole", weights, "tinyd")
    assert summary["denoise_switch"]["steps"] == 4
    shipped, _ = load_model(weights, "tinyd")
    x = _audio(3)
    with torch.no_grad():
        assert torch.equal(shipped.encoder(x, 0.0), _base().encoder(x))
        torch.testing.assert_close(shipped.encoder(x, 1.0), whole.encoder(x, 1.0))
        torch.testing.assert_close(model_from_run(tmp_path / "whole", weights).encoder(x, 1.0), whole.encoder(x, 1.0))
    assert shipped.cfg.denoise_context_channels == context


def test_tiny_context_training_starts_from_a_pointwise_run(tmp_path: Path) -> None:
    """--init-from a switch without a context: its tensors load, the context starts fresh, so the
    first step starts from that switch exactly; a switch of another shape is refused."""
    _tiny_data(tmp_path / "data")
    cfg = TrainConfig(steps=2, batch=3, seconds=0.2, adapter=4, val_examples=3, eval_every=2, lr=1e-2)
    pointwise = train(tmp_path / "data", tmp_path / "pointwise", cfg, base=_base())
    step0 = train(tmp_path / "data", tmp_path / "ctx0", replace(cfg, steps=1, lr=1e-12, context=3, init_from=str(tmp_path / "pointwise")), base=_base())
    x = _audio(6)
    with torch.no_grad():
        torch.testing.assert_close(step0.encoder(x, 1.0), pointwise.encoder(x, 1.0), atol=1e-6, rtol=0)
    grown = train(tmp_path / "data", tmp_path / "ctx", replace(cfg, context=3, init_from=str(tmp_path / "pointwise")), base=_base())
    assert any(v.abs().sum() > 0 for k, v in switch_state(grown).items() if ".context.out." in k)
    with pytest.raises(ValueError, match="does not fit"):
        train(tmp_path / "data", tmp_path / "wider", replace(cfg, adapter=5, init_from=str(tmp_path / "pointwise")), base=_base())


@pytest.mark.parametrize("stages", [0, 8])
def test_tiny_decoded_loss_training_logs_and_resumes_exactly(tmp_path: Path, stages: int) -> None:
    """The loss through the frozen decoder (unquantized, or through 8 RVQ stages straight-through)
    is logged, trains the switch and resumes bit for bit; --init-from starts from a run's switch."""
    _tiny_data(tmp_path / "data")
    cfg = TrainConfig(steps=4, batch=3, seconds=0.2, adapter=4, val_examples=3, eval_every=2, lr=1e-2, decoded_weight=0.5, decoded_stages=stages)
    whole = train(tmp_path / "data", tmp_path / "whole", cfg, base=_base(), log_every=1)
    rows = list(csv.DictReader((tmp_path / "whole" / "log.csv").open()))
    assert all(float(r["decoded_loss"]) > 0 for r in rows) and float(rows[-1]["val_mel_noisy_on"]) >= 0
    train(tmp_path / "data", tmp_path / "split", cfg, base=_base(), until=2, log_every=1)
    resumed = train(tmp_path / "data", tmp_path / "split", cfg, base=_base(), log_every=1)
    for key, value in switch_state(whole).items():
        assert torch.equal(value, switch_state(resumed)[key]), key
    latent_only = train(tmp_path / "data", tmp_path / "latent", replace(cfg, decoded_weight=0.0), base=_base(), log_every=1)
    assert any(not torch.equal(v, switch_state(latent_only)[k]) for k, v in switch_state(whole).items())  # the decoded loss counts

    started = train(tmp_path / "data", tmp_path / "init", replace(cfg, steps=1, lr=1e-9, init_from=str(tmp_path / "whole")), base=_base())
    for key, value in switch_state(whole).items():
        torch.testing.assert_close(switch_state(started)[key], value, atol=1e-6, rtol=0)
    recorded = torch.load(tmp_path / "init" / "checkpoint.pt", weights_only=False)["init_from"]
    assert str(tmp_path / "whole") in recorded and "sha256" in recorded  # what it started from, for the export's provenance


def test_decoded_loss_weighs_clean_examples_and_passes_gradient_through_the_quantizer(pair) -> None:
    base, _ = pair
    latent = base.encoder(_audio(4)).detach().requires_grad_(True)
    decoded = decode_latent(base, latent, 8)
    decoded.pow(2).sum().backward()
    assert latent.grad is not None and latent.grad.abs().sum() > 0  # straight-through, not stopped
    loss = DecodedSpectralLoss(16_000, clean_weight=10.0)
    target = decoded.detach()
    wrong = target.clone()
    wrong[1] = torch.roll(wrong[1], 160)
    assert loss(target, target, torch.tensor([False, True])) == 0
    clean_wrong, noisy_wrong = loss(wrong, target, torch.tensor([False, True])), loss(wrong, target, torch.tensor([True, False]))
    assert clean_wrong > 5 * noisy_wrong > 0  # example 1 wrong: weight 10 of 11 when clean, 1 of 11 when noisy


def test_missing_data_is_a_one_line_error(tmp_path: Path, capsys) -> None:
    assert main(["--data", str(tmp_path), "--out", str(tmp_path / "run")]) == 2
    assert main(["export", "--run", str(tmp_path), "--name", "x"]) == 2
    _tiny_data(tmp_path / "data")
    assert main(["--data", str(tmp_path / "data"), "--out", str(tmp_path / "run"), "--init-from", "no-such-model"]) == 2
    assert all(line.startswith("error: ") for line in capsys.readouterr().err.splitlines())


SHIPPED = "soundstream16k-lyra2xd"


@pytest.mark.skipif(not (Path(__file__).parents[2] / "codec" / "weights" / f"{SHIPPED}.pt").is_file(), reason="not exported yet")
@pytest.mark.parametrize("engine", ["torch", "onnx"])
def test_shipped_switch_off_is_its_base_bit_for_bit(engine: str) -> None:
    """Codes and audio of soundstream16k-lyra2xd with the switch off are its base's, frame by
    frame through the engine a call uses, and the offline model's."""
    from codec.engine import frame_decoder, frame_encoder

    model, model_id = load_model(None, SHIPPED)
    base, base_id = load_model(None, "soundstream16k-lyra2x")
    assert model.cfg.denoise_conditioning and not base.cfg.denoise_conditioning
    x = _audio(10, batch=1)[0].numpy()
    outputs = []
    for m, mid in ((model, model_id), (base, base_id)):
        enc, dec = frame_encoder(m, mid, engine), frame_decoder(m, mid, engine)
        try:
            codes = [enc.encode(x[t * 320 : (t + 1) * 320], 30, 0.0) for t in range(10)]
            outputs.append((np.stack(codes), np.stack([dec.decode(c) for c in codes])))
        finally:
            enc.close()
            dec.close()
    assert np.array_equal(outputs[0][0], outputs[1][0]) and np.array_equal(outputs[0][1], outputs[1][1])
    with torch.no_grad():
        offline = model.encode(torch.from_numpy(x)[None], 30, 0.0)
        assert torch.equal(offline, base.encode(torch.from_numpy(x)[None], 30))
        assert torch.equal(model.decode(offline), base.decode(offline))


@pytest.mark.skipif(not (Path(__file__).parents[2] / "codec" / "weights" / f"{SHIPPED}.pt").is_file(), reason="not exported yet")
def test_shipped_switch_brings_noisy_features_toward_clean_ones() -> None:
    """On the bundled sample (not training data) with coloured noise at 5 dB: the switched-on
    encoder's features of the noisy speech are nearer the base's of the clean speech, and the
    switch changes the clean speech's features little."""
    from codec.audio_io import load_audio
    from codec.train.augment import coloured_noise
    from codec.train.denoise import relative_error

    model, _ = load_model(None, SHIPPED)
    clean_np, _ = load_audio(Path(__file__).parents[2] / "codec" / "samples" / "speech.wav", 16_000)
    clean = torch.from_numpy(clean_np[: 3 * 16_000 // 320 * 320])[None]
    noise = coloured_noise(1, clean.shape[-1], torch.Generator().manual_seed(0))
    noisy = clean + noise * (clean.pow(2).mean() / noise.pow(2).mean()).sqrt() * 10 ** (-5 / 20)
    with torch.no_grad():
        target = model.encoder(clean, 0.0)
        off, on = relative_error(model.encoder(noisy, 0.0), target), relative_error(model.encoder(noisy, 1.0), target)
        clean_on = relative_error(model.encoder(clean, 1.0), target)
    assert on < 0.9 * off and clean_on < 0.01, (off, on, clean_on)  # measured: 0.43 -> 0.32, clean 0.005
