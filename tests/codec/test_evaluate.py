"""`codec eval` on a folder: a table for ours and Opus, files written; the denoise mode's options."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import soundfile as sf

from codec.cli import build_parser

ROOT = Path(__file__).resolve().parents[2]


def test_eval_writes_table_json_and_plot(tmp_path: Path) -> None:
    clips = tmp_path / "clips"
    clips.mkdir()
    speech, rate = sf.read(ROOT / "codec" / "samples" / "speech.wav")
    sf.write(clips / "a.wav", speech[: rate * 2], rate)
    out = tmp_path / "out"
    cmd = [sys.executable, "-m", "codec", "eval", str(clips), "--kbps", "3", "--opus-kbps", "6", "--out", str(out), "--quiet", "--model", "ssc16k"]
    result = subprocess.run(cmd, capture_output=True, text=True, cwd=ROOT, timeout=300)
    assert result.returncode == 0, result.stderr
    assert "| ours | 3 |" in result.stdout and "| opus | 6 |" in result.stdout
    data = json.loads((out / "results.json").read_text())
    names = {r["codec"] for r in data["results"]}
    assert names == {"ours", "opus"}
    assert all(-0.5 <= r["pesq_wb"] <= 4.7 and 0 <= r["stoi"] <= 1 for r in data["results"])
    assert (out / "plot.png").stat().st_size > 1000
    again = subprocess.run(cmd, capture_output=True, text=True, cwd=ROOT, timeout=300)
    assert again.returncode == 2 and "already holds results" in again.stderr


def test_eval_on_a_missing_folder_is_a_clean_error(tmp_path: Path) -> None:
    result = subprocess.run([sys.executable, "-m", "codec", "eval", str(tmp_path / "nope")], capture_output=True, text=True, cwd=ROOT, timeout=120)
    assert result.returncode == 2 and "Traceback" not in result.stderr and "no such folder" in result.stderr


def test_the_denoise_mode_takes_several_snrs_and_defaults_to_6_kbps_with_both_enhancers() -> None:
    args = build_parser().parse_args(["eval", "clips", "--noise-snr", "0", "5", "10", "15"])
    assert args.noise_snr == [0.0, 5.0, 10.0, 15.0] and args.enhancers == ["deepfilternet3", "webrtc-ns"]
    assert args.kbps is None and args.opus_kbps is None  # resolved by mode: 6 kbps and no Opus with --noise-snr
    assert build_parser().parse_args(["eval", "clips", "--noise-snr", "5", "--enhancers"]).enhancers == []
