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


def test_int8_engine_keeps_the_ssc_models_quality() -> None:
    """int8 only where the ssc model tolerates it (encoder, decoder trunk): with the
    decoder's stages and head in int8 too, this sample's log-mel distance went 0.30 -> 1.05."""
    from codec.audio_io import load_audio
    from codec.train.evaluate import metrics
    from codec.weights import load_model

    model, model_id = load_model(name="ssc16k")  # int8 is refused for the soundstream default (below)
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


@pytest.fixture(scope="module")
def soundstream():
    """A small soundstream-family model with random weights and codebooks."""
    from codec.config import SoundStreamConfig
    from codec.soundstream import SoundStreamCodec

    torch.manual_seed(3)
    model = SoundStreamCodec(SoundStreamConfig(channels=(16, 32, 64, 128), n_quantizers=12))
    with torch.no_grad():
        model.quantizer.codebooks.normal_(0.0, 0.3)
        for p in model.parameters():
            p.mul_(2.0)  # activations that are not tiny, so the comparison means something
    return model.eval()


def test_soundstream_onnx_step_matches_torch_streaming_with_varying_stages(soundstream) -> None:
    """The time-major ONNX step (folded units, gathered taps, transposed convs as taps over past
    inputs) gives the torch streaming model's codes and audio, for a batch of streams, frame by
    frame, with a different stage count each frame; reset restarts every stream from silence."""
    from codec.streaming import StreamingDecoder, StreamingEncoder

    model = soundstream
    hop, frames = model.cfg.hop, 8
    x = (torch.randn(2, frames * hop, generator=torch.Generator().manual_seed(11)) * 0.3).numpy()
    stages = [1, 12, 5, 9, 3, 12, 7, 2]
    encoder = OnnxStreamingEncoder(model, "ss-test", batch_size=2)
    decoder = OnnxStreamingDecoder(model, "ss-test", batch_size=2)
    assert encoder.part.operator_count() < 150 and decoder.part.operator_count() < 150

    def run_onnx() -> tuple[list[np.ndarray], list[np.ndarray]]:
        codes, audio = [], []
        for t, n in enumerate(stages):
            c = encoder.encode(x[:, t * hop : (t + 1) * hop], n)
            codes.append(c)
            audio.append(decoder.decode(c))
        return codes, audio

    codes, audio = run_onnx()
    with StreamingEncoder(model, 2) as ref_enc, StreamingDecoder(model, 2) as ref_dec:
        for t, n in enumerate(stages):
            ref_codes = ref_enc.encode(x[:, t * hop : (t + 1) * hop], n)
            assert np.array_equal(codes[t], ref_codes.numpy()), t
            ref_audio = ref_dec.decode(ref_codes).numpy()
            assert np.abs(audio[t] - ref_audio).max() <= 1e-4, t
    assert np.abs(np.concatenate(audio, -1)).max() > 1e-2  # the comparison is not of silence

    encoder.reset()
    decoder.reset()
    again_codes, again_audio = run_onnx()
    assert all(np.array_equal(a, b) for a, b in zip(codes, again_codes))
    assert np.abs(np.concatenate(again_audio, -1) - np.concatenate(audio, -1)).max() <= 1e-5

    # Restarting one stream of the two leaves the other's state alone.
    decoder.reset([0])
    partial = decoder.decode(codes[0])
    assert np.abs(partial[0] - audio[0][0]).max() <= 1e-5
    assert np.abs(partial[1] - audio[0][1]).max() > 1e-4


def test_int8_is_refused_for_the_soundstream_family(soundstream) -> None:
    from codec.engine import DEFAULT_ENGINE, frame_decoder
    from codec.errors import CodecError

    with pytest.raises(CodecError, match="costs quality for this model; use onnx"):
        OnnxStreamingEncoder(soundstream, "ss-test", int8=True)
    with pytest.raises(CodecError, match="costs quality for this model; use onnx"):
        frame_decoder(soundstream, "ss-test", "onnx-int8")
    assert DEFAULT_ENGINE == "onnx"
