"""`codec eval` on a folder: a table for ours and Opus, files written, noise mode."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import soundfile as sf

ROOT = Path(__file__).resolve().parents[2]


def test_eval_writes_table_json_and_plot(tmp_path: Path) -> None:
    clips = tmp_path / "clips"
    clips.mkdir()
    speech, rate = sf.read(ROOT / "codec" / "samples" / "speech.wav")
    sf.write(clips / "a.wav", speech[: rate * 2], rate)
    out = tmp_path / "out"
    cmd = [
        sys.executable,
        "-m",
        "codec",
        "eval",
        str(clips),
        "--kbps",
        "3",
        "--opus-kbps",
        "6",
        "--noise-snr",
        "10",
        "--out",
        str(out),
        "--quiet",
        "--model",
        "ssc16k",
    ]
    result = subprocess.run(cmd, capture_output=True, text=True, cwd=ROOT, timeout=300)
    assert result.returncode == 0, result.stderr
    assert "| ours +denoise | 3 |" in result.stdout and "| opus | 6 |" in result.stdout
    data = json.loads((out / "results.json").read_text())
    names = {r["codec"] for r in data["results"]}
    assert names == {"noisy input", "ours", "ours +denoise", "opus"}
    assert all(-0.5 <= r["pesq_wb"] <= 4.7 and 0 <= r["stoi"] <= 1 for r in data["results"])
    assert (out / "plot.png").stat().st_size > 1000
    again = subprocess.run(cmd, capture_output=True, text=True, cwd=ROOT, timeout=300)
    assert again.returncode == 2 and "already holds results" in again.stderr


def test_eval_on_a_missing_folder_is_a_clean_error(tmp_path: Path) -> None:
    result = subprocess.run([sys.executable, "-m", "codec", "eval", str(tmp_path / "nope")], capture_output=True, text=True, cwd=ROOT, timeout=120)
    assert result.returncode == 2 and "Traceback" not in result.stderr and "no such folder" in result.stderr
