"""WebRTC's noise suppressor (livekit's audio processing module) as a reference enhancer."""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
import pytest

from codec.baselines.webrtc_ns import MISSING, WebRtcNoiseSuppressor
from codec.cli import main
from codec.errors import CodecError

RATE = 16_000


def test_it_suppresses_steady_noise_and_adds_no_delay() -> None:
    pytest.importorskip("livekit.rtc", reason="the frontend extra's livekit is not installed")
    rng = np.random.default_rng(0)
    audio = (0.01 * rng.standard_normal(3 * RATE)).astype(np.float32)  # steady noise the suppressor learns
    audio[2 * RATE :: 800] += 0.5  # clicks in the last second, 50 ms apart
    out = WebRtcNoiseSuppressor().enhance(audio, RATE)
    assert out.shape == audio.shape and out.dtype == np.float32
    quiet = slice(RATE + 400, 2 * RATE - 400)
    assert np.mean(out[quiet] ** 2) < 0.25 * np.mean(audio[quiet] ** 2)  # 6 dB or more of the noise gone
    clicks = out[2 * RATE + 4000 : 2 * RATE + 8000].reshape(-1, 800)
    assert np.all(np.argmax(np.abs(clicks), axis=1) == 0)  # each click where it was: the module's delay is cut


def test_rates_the_module_does_not_take_are_refused() -> None:
    pytest.importorskip("livekit.rtc", reason="the frontend extra's livekit is not installed")
    with pytest.raises(ValueError, match="8, 16, 32 or 48 kHz"):
        WebRtcNoiseSuppressor().enhance(np.zeros(441, np.float32), 44_100)


def test_a_missing_package_is_one_line_and_exit_2(monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    monkeypatch.setitem(sys.modules, "livekit", None)  # what `import` finds when the package is absent
    with pytest.raises(CodecError, match="livekit"):
        WebRtcNoiseSuppressor()
    assert main(["eval", str(tmp_path), "--noise-snr", "5", "--enhancers", "webrtc-ns", "--quiet"]) == 2
    assert capsys.readouterr().err == f"error: {MISSING}\n"
