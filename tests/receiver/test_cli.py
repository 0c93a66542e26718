"""The receiver's command line fails cleanly and never overwrites without --force."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def run(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "receiver", *args], capture_output=True, text=True, cwd=ROOT, timeout=120)


def test_existing_output_is_kept(tmp_path: Path) -> None:
    keep = tmp_path / "keep.wav"
    keep.write_bytes(b"mine")
    result = run("--listen", "127.0.0.1:0", "--output", str(keep), "--once")
    assert result.returncode == 2 and "already exists" in result.stderr and keep.read_bytes() == b"mine"


def test_bad_listen_address(tmp_path: Path) -> None:
    result = run("--listen", "nonsense", "--output", str(tmp_path / "o.wav"))
    assert result.returncode == 2 and "Traceback" not in result.stderr and "HOST:PORT" in result.stderr


def test_a_token_no_caller_could_send_is_refused(tmp_path: Path) -> None:
    result = run("--listen", "127.0.0.1:0", "--output", str(tmp_path / "o.wav"), "--token", "x" * 257)
    assert result.returncode == 2 and "Traceback" not in result.stderr and "at most 256" in result.stderr
