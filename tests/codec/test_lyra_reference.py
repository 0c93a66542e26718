"""The converted default model against the reference it came from: Lyra v2's TFLite models run by
the interpreter (ai-edge-litert, the `eval` extra), streaming frame by frame as Lyra's library does.

What is exact and what is not:
- the residual VQ is bit-exact: indices and decoded vectors at 1, 8, 16, 30 and 46 stages;
- the encoder is not: the TFLite graph computes its last seven layers with int8 activations,
  which the float model does not emulate. On the dev clips the features (rms ~5.5) differ by a
  per-frame max of ~1.0 (median) to 2.3 (worst frame), mean |diff| 0.32;
- the decoder, fed the same features, differs by a per-frame max of 0.003-0.015 (median) and at
  most 0.095 (peaks ~0.5); `python -m bench.lyra_port` prints these per clip.
The tolerances below sit just above what the bundled sample gives.
"""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch

from codec.audio_io import load_audio
from codec.baselines.lyra import DEFAULT_MODELS, MODEL_FILES
from codec.weights import WEIGHTS_DIR, load_model

pytest.importorskip("ai_edge_litert", reason="the reference interpreter (ai-edge-litert, the eval extra) is not installed")
pytest.importorskip("tflite", reason="the tflite schema package (the eval extra) is not installed")
if not all((DEFAULT_MODELS / name).is_file() for name in MODEL_FILES):
    pytest.skip(f"Lyra v2's TFLite models are not in {DEFAULT_MODELS}", allow_module_level=True)

from codec.baselines.lyra import LyraCodec  # noqa: E402
from codec.lyra_import import MODEL_NAME, convert, file_digests  # noqa: E402

FRAMES = 150
SAMPLE = WEIGHTS_DIR.parent / "samples" / "speech.wav"


@pytest.fixture(scope="module")
def reference() -> dict[str, np.ndarray]:
    """The interpreter's features, 46-stage indices, dequantized features and audio, frame by frame."""
    audio, _ = load_audio(SAMPLE, 16_000)
    audio = audio[: FRAMES * 320]
    lyra = LyraCodec(9.2)
    feats, indices, dequantized, decoded = [], [], [], []
    for t in range(FRAMES):
        f = lyra.encoder(input_audio=audio[t * 320 : (t + 1) * 320][None])["output_0"]
        idx = lyra.quantize(input_frames=f, num_quantizers=np.array(46, np.int32))["output_0"]
        q = lyra.dequantize(encoding_indices=idx)["output_0"]
        feats.append(f[0, 0])
        indices.append(idx[:, 0, 0])
        dequantized.append(q[0, 0])
        decoded.append(lyra.decoder(input_audio=q)["output_0"][0])
    return {"audio": audio, "features": np.stack(feats), "indices": np.stack(indices), "dequantized": np.stack(dequantized), "decoded": np.stack(decoded)}


@pytest.fixture(scope="module")
def model():
    return load_model(name=MODEL_NAME)[0]


@pytest.mark.parametrize("stages", [1, 8, 16, 30, 46])
def test_rvq_is_bit_exact_with_the_reference(model, reference, stages: int) -> None:
    lyra = LyraCodec(9.2)
    feats = torch.from_numpy(reference["features"])[None]
    ours = model.quantizer.encode(feats, stages)[0].numpy().T  # [frames, stages]
    vectors = model.quantizer.decode(torch.from_numpy(ours.T.copy())[None])[0].numpy()
    for t in range(0, FRAMES, 3):
        f = reference["features"][t][None, None]
        idx = lyra.quantize(input_frames=f, num_quantizers=np.array(stages, np.int32))["output_0"]
        assert np.array_equal(idx[:stages, 0, 0], ours[t])
        assert np.all(idx[stages:] == -1)
        q = lyra.dequantize(encoding_indices=idx)["output_0"][0, 0]
        assert np.array_equal(q, vectors[t])


def test_encoder_features_are_within_the_stated_tolerance(model, reference) -> None:
    with torch.no_grad():
        ours = model.encoder(torch.from_numpy(reference["audio"])[None])[0].numpy()
    diff = np.abs(ours - reference["features"])
    assert diff.max(axis=1).max() < 2.6
    assert diff.mean() < 0.36


def test_decoder_audio_is_within_the_stated_tolerance(model, reference) -> None:
    with torch.no_grad():
        ours = model.decoder(torch.from_numpy(reference["dequantized"])[None])[0].numpy().reshape(FRAMES, 320)
    per_frame = np.abs(ours - reference["decoded"]).max(axis=1)
    assert np.median(per_frame) < 0.02
    assert per_frame.max() < 0.1


def test_import_lyra_writes_the_shipped_model_byte_for_byte(tmp_path) -> None:
    from codec.lyra_import import write_model

    model_id = write_model(DEFAULT_MODELS, tmp_path)
    assert model_id == load_model(name=MODEL_NAME)[1]
    assert (tmp_path / f"{MODEL_NAME}.pt").read_bytes() == (WEIGHTS_DIR / f"{MODEL_NAME}.pt").read_bytes()
    assert (tmp_path / f"{MODEL_NAME}.md").read_text() == (WEIGHTS_DIR / f"{MODEL_NAME}.md").read_text()


def test_converter_reproduces_the_shipped_weights_and_records_their_source() -> None:
    converted = convert(DEFAULT_MODELS).state_dict()
    shipped = load_model(name=MODEL_NAME)[0].state_dict()
    assert converted.keys() == shipped.keys()
    assert all(torch.equal(converted[k], shipped[k]) for k in converted)
    meta = json.loads((WEIGHTS_DIR / f"{MODEL_NAME}.json").read_text())
    assert meta["source"]["files_sha256"] == file_digests(DEFAULT_MODELS)
    card = (WEIGHTS_DIR / f"{MODEL_NAME}.md").read_text()
    assert "converted and modified" in card and meta["source"]["commit"] in card
    assert "Apache License" in (WEIGHTS_DIR / f"{MODEL_NAME}.LICENSE").read_text()
