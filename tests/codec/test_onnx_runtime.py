"""The onnxruntime streaming step gives the PyTorch codec's output."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch

from codec.model import Codec
from codec.train.losses import log_mel_distance
from codec.onnx_runtime import OnnxStreamingDecoder, OnnxStreamingEncoder

pytest.importorskip("onnxruntime")


@pytest.fixture(autouse=True)
def _own_cache(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("SSVOIP_CACHE", str(tmp_path))


def test_onnx_streaming_matches_pytorch_offline(small_model: Codec) -> None:
    cfg = small_model.cfg
    x = (torch.randn(2, 12 * cfg.hop, generator=torch.Generator().manual_seed(5)) * 0.2).numpy()
    encoder = OnnxStreamingEncoder(small_model, "small-test", batch_size=2)
    decoder = OnnxStreamingDecoder(small_model, "small-test", batch_size=2)
    codes = np.concatenate([encoder.encode(x[:, t * cfg.hop : (t + 1) * cfg.hop], 6) for t in range(12)], axis=-1)
    counts = np.random.default_rng(0).integers(1, 7, size=(2, 12))
    audio = np.concatenate([decoder.decode(codes[..., t : t + 1], counts[:, t : t + 1]) for t in range(12)], axis=-1)

    ref_codes = small_model.encode(torch.from_numpy(x), 6)
    assert np.array_equal(codes, ref_codes.numpy())
    ref_audio = small_model.decode(ref_codes, torch.from_numpy(counts)).numpy()
    assert np.abs(audio - ref_audio).max() <= 1e-4


def test_int8_engine_stays_close(small_model: Codec) -> None:
    cfg = small_model.cfg
    x = (torch.randn(1, 8 * cfg.hop, generator=torch.Generator().manual_seed(6)) * 0.2).numpy()
    codes = small_model.encode(torch.from_numpy(x), 4)
    ref = small_model.decode(codes).numpy()
    decoder = OnnxStreamingDecoder(small_model, "small-test", int8=True)
    audio = np.concatenate([decoder.decode(codes[..., t : t + 1].numpy()) for t in range(8)], axis=-1)
    assert np.isfinite(audio).all()
    # Phase advances accumulate, so int8 rounding drifts the phase; the spectrum must stay
    # (the trained model's quality cost is measured by `codec eval --engine onnx-int8`).
    distance = float(log_mel_distance(torch.from_numpy(audio), torch.from_numpy(ref), cfg.sample_rate, n_fft=512, n_mels=40))
    assert distance < 0.1
    decoder.reset()
    again = decoder.decode(codes[..., :1].numpy())
    assert np.allclose(again, audio[:, : cfg.hop])


def test_int8_engine_keeps_the_shipped_models_quality() -> None:
    """int8 only where the shipped model tolerates it (encoder, decoder trunk): with the
    decoder's stages and head in int8 too, this sample's log-mel distance went 0.30 -> 1.05."""
    from codec.audio_io import load_audio
    from codec.train.evaluate import metrics
    from codec.weights import load_model

    model, model_id = load_model()
    audio, _ = load_audio(Path(__file__).resolve().parents[2] / "codec" / "samples" / "speech.wav", model.cfg.sample_rate)
    hop = model.cfg.hop
    frames = audio[: audio.size // hop * hop].astype(np.float32).reshape(-1, hop)

    def roundtrip(int8: bool) -> np.ndarray:
        encoder = OnnxStreamingEncoder(model, model_id, int8=int8)
        decoder = OnnxStreamingDecoder(model, model_id, int8=int8)
        return np.concatenate([decoder.decode(encoder.encode(f[None], 12))[0] for f in frames])

    float32, int8 = (metrics(frames.reshape(-1), roundtrip(flag))["mel_distance"] for flag in (False, True))
    assert int8 < float32 + 0.02, (float32, int8)


def test_onnx_denoise_switch_per_frame_matches_pytorch(small_model: Codec) -> None:
    """One graph per denoise value, one shared state: switching mid-stream is the offline
    pass with a per-frame condition."""
    import copy

    model = copy.deepcopy(small_model)
    with torch.no_grad():
        for name, p in model.named_parameters():
            if ".film." in name:
                p.normal_(0.0, 0.3, generator=torch.Generator().manual_seed(len(name)))
    cfg = model.cfg
    frames = 10
    x = (torch.randn(1, frames * cfg.hop, generator=torch.Generator().manual_seed(8)) * 0.2).numpy()
    flags = [0.0, 0.0, 1.0, 1.0, 1.0, 0.0, 1.0, 0.0, 0.0, 1.0]
    encoder = OnnxStreamingEncoder(model, "film-test")
    decoder = OnnxStreamingDecoder(model, "film-test")
    sent_codes, audio = [], []
    for t, flag in enumerate(flags):
        hop = x[:, t * cfg.hop : (t + 1) * cfg.hop]
        codes = encoder.encode(hop, 4, denoise=flag)
        audio.append(decoder.decode(codes, denoise=flag))
        sent_codes.append(codes)
    cond = torch.tensor([flags])
    ref_codes = model.encode(torch.from_numpy(x), 4, denoise=cond)
    assert np.array_equal(np.concatenate(sent_codes, axis=-1), ref_codes.numpy())
    ref_audio = model.decode(ref_codes, denoise=cond).numpy()
    assert np.abs(np.concatenate(audio, axis=-1) - ref_audio).max() <= 1e-4
    assert np.abs(ref_audio - model.decode(ref_codes).numpy()).max() > 1e-3  # the switch does something
    with pytest.raises(ValueError, match="denoise"):
        decoder.decode(ref_codes[..., :1].numpy(), denoise=0.5)
