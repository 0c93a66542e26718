"""Lyra v2 as a baseline: it codes speech recognisably, refuses rates it has not, and a
missing model folder is a one-line error."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf

from codec.baselines.lyra import DEFAULT_MODELS, MODEL_FILES, LyraCodec, lyra_roundtrip
from codec.errors import CodecError
from codec.train.evaluate import metrics

ROOT = Path(__file__).resolve().parents[2]


def _need_lyra() -> None:
    pytest.importorskip("ai_edge_litert", reason="ai-edge-litert (the eval extra) is not installed")
    if not all((DEFAULT_MODELS / name).is_file() for name in MODEL_FILES):
        pytest.skip(f"Lyra v2's models are not in {DEFAULT_MODELS} (the project's shared baselines)")


def _speech(seconds: float = 3.0) -> np.ndarray:
    audio, rate = sf.read(ROOT / "codec" / "samples" / "speech.wav", dtype="float32")
    assert rate == 16_000
    return audio[: int(rate * seconds)]


def test_lyra_codes_speech_recognisably_and_keeps_its_length() -> None:
    _need_lyra()
    speech = _speech()
    decoded = lyra_roundtrip(speech[:-123], 6.0)
    assert decoded.shape == (speech.size - 123,)
    scores = metrics(speech[:-123], decoded)
    assert scores["stoi"] > 0.8 and scores["pesq_wb"] > 2.0, scores
    silence = lyra_roundtrip(np.zeros(16_000, np.float32), 6.0)
    assert np.sqrt(np.mean(silence**2)) < 0.1 * np.sqrt(np.mean(speech**2))


def test_lyra_refuses_a_rate_that_is_not_whole_codebooks() -> None:
    _need_lyra()
    assert LyraCodec(3.2).quantizers == 16 and LyraCodec(9.2).quantizers == 46
    for kbps in (6.1, 9.4, 0.0):
        with pytest.raises(CodecError, match="whole 4-bit codebooks"):
            LyraCodec(kbps)


def test_eval_with_lyra_models_missing_is_a_clean_error(tmp_path: Path) -> None:
    pytest.importorskip("ai_edge_litert", reason="ai-edge-litert (the eval extra) is not installed")
    cmd = [sys.executable, "-m", "codec", "eval", str(ROOT / "codec" / "samples"), "--lyra-kbps", "6", "--lyra-models", str(tmp_path)]
    result = subprocess.run(cmd, capture_output=True, text=True, cwd=ROOT, timeout=120)
    assert result.returncode == 2 and "Traceback" not in result.stderr
    assert "Lyra models not found" in result.stderr
