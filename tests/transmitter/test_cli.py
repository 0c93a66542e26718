"""The transmitter's command line fails cleanly (and refuses --denoise for a model without the switch before connecting)."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from transmitter.__main__ import _parser, main

ROOT = Path(__file__).resolve().parents[2]


def run(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "transmitter", *args], capture_output=True, text=True, cwd=ROOT, timeout=120)


def test_nobody_listening_is_a_one_line_error() -> None:
    result = run("--connect", "ws://127.0.0.1:9", "--input", "tone")
    assert result.returncode == 2 and "Traceback" not in result.stderr
    assert result.stderr.startswith("error: call failed: cannot connect")


def test_unreadable_input_is_a_one_line_error(tmp_path: Path) -> None:
    bad = tmp_path / "x.wav"
    bad.write_text("not audio")
    result = run("--connect", "ws://127.0.0.1:9", "--input", str(bad))
    assert result.returncode == 2 and "Traceback" not in result.stderr and "not a readable audio file" in result.stderr


def test_denoise_with_a_model_without_the_switch_is_refused_before_connecting(capsys: pytest.CaptureFixture, monkeypatch: pytest.MonkeyPatch) -> None:
    from transport.websocket import WebSocketTransport

    async def no_connecting(*args, **kwargs):
        raise AssertionError("connected before refusing --denoise")

    monkeypatch.setattr(WebSocketTransport, "connect", no_connecting)
    assert main(["--connect", "ws://127.0.0.1:9", "--input", "tone", "--denoise", "--model", "soundstream16k-lyra2x"]) == 2
    err = capsys.readouterr().err
    assert err.startswith("error: model soundstream16k-lyra2x has no denoise switch") and len(err.strip().splitlines()) == 1


def test_denoise_parses() -> None:
    assert _parser().parse_args(["--denoise"]).denoise and not _parser().parse_args([]).denoise
