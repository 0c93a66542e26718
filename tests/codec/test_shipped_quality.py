"""The shipped model on the bundled speech sample: a guard against broken or mismatched weights.

The quality *figures* live in the README and come from `python -m codec eval`; these checks
only assert what any working model of ours must do: more layers reconstruct better, and
speech comes out as speech.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from codec.audio_io import load_audio
from codec.train.evaluate import codec_roundtrip, metrics
from codec.weights import load_model

SAMPLE = Path(__file__).resolve().parents[2] / "codec" / "samples" / "speech.wav"


@pytest.fixture(scope="module")
def scores() -> dict[float, dict[float, float]]:
    model, model_id = load_model()
    audio, _ = load_audio(SAMPLE, model.cfg.sample_rate)
    return {kbps: metrics(audio, codec_roundtrip(model, model_id, audio, kbps)) for kbps in (1.0, 6.0, 12.0)}


def test_more_layers_reconstruct_better(scores) -> None:
    assert scores[12.0]["mel_distance"] < scores[6.0]["mel_distance"] < scores[1.0]["mel_distance"]
    # 22 more layers (11 kbps) must buy a clear improvement, not a rounding difference.
    assert scores[12.0]["mel_distance"] < scores[1.0]["mel_distance"] - 0.03


def test_speech_comes_out_as_speech(scores) -> None:
    # A silent, noise-only or misaligned output scores STOI < 0.3 against the input.
    assert scores[6.0]["stoi"] > 0.5
    assert np.isfinite(scores[6.0]["pesq_wb"])
