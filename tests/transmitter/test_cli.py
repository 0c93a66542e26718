"""The transmitter's command line fails cleanly."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

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
