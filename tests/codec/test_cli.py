"""The CLI on ordinary and odd inputs: one-line errors, non-zero exits, no tracebacks."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf

from codec.bitstream import read_file

ROOT = Path(__file__).resolve().parents[2]


def run(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "codec", *args], capture_output=True, text=True, cwd=ROOT, timeout=300)


def _tone(path: Path, rate: int, channels: int, seconds: float) -> None:
    t = np.arange(int(rate * seconds)) / rate
    mono = 0.3 * np.sin(2 * np.pi * 330 * t) * (1 + 0.5 * np.sin(2 * np.pi * 2 * t))
    sf.write(path, np.stack([mono] * channels, axis=1) if channels > 1 else mono, rate)


def assert_clean_error(result: subprocess.CompletedProcess, fragment: str) -> None:
    assert result.returncode != 0
    assert "Traceback" not in result.stderr
    lines = [line for line in result.stderr.splitlines() if line.strip()]
    assert len(lines) == 1, result.stderr
    assert lines[0].startswith("error:") and fragment in lines[0], lines[0]


def test_stereo_44k_round_trip_keeps_rate_and_length(tmp_path: Path) -> None:
    src = tmp_path / "stereo.wav"
    _tone(src, 44_100, 2, 1.3)
    out = tmp_path / "out.wav"
    result = run("roundtrip", str(src), str(out), "--kbps", "3", "--quiet")
    assert result.returncode == 0, result.stderr
    info = sf.info(out)
    assert info.samplerate == 44_100 and info.channels == 1
    assert abs(info.frames - int(44_100 * 1.3)) <= 2


def test_8k_encode_decode_and_info(tmp_path: Path) -> None:
    src = tmp_path / "narrow.wav"
    _tone(src, 8000, 1, 0.5)
    ssc = tmp_path / "narrow.ssc"
    assert run("encode", str(src), str(ssc), "--layers", "5", "--quiet").returncode == 0
    coded = read_file(ssc, 320)
    assert coded.source_rate == 8000 and coded.frames == 25 and set(coded.layer_counts) == {5}
    out = tmp_path / "narrow_out.wav"
    assert run("decode", str(ssc), str(out), "--quiet").returncode == 0
    assert sf.info(out).samplerate == 8000
    info = run("info", str(ssc), "--json")
    assert info.returncode == 0 and '"layers_max": 5' in info.stdout


def test_kbps_picks_the_largest_layer_count_that_fits(tmp_path: Path) -> None:
    src = tmp_path / "a.wav"
    _tone(src, 16_000, 1, 0.2)
    ssc = tmp_path / "a.ssc"
    assert run("encode", str(src), str(ssc), "--kbps", "6.9", "--quiet").returncode == 0
    assert set(read_file(ssc, 320).layer_counts) == {34}  # the default model's 0.2 kbps stages: 6.8 kbps
    other = tmp_path / "b.ssc"
    assert run("encode", str(src), str(other), "--kbps", "6.9", "--model", "ssc16k", "--quiet").returncode == 0
    assert set(read_file(other, 320).layer_counts) == {13}  # ssc16k's 0.5 kbps layers: 6.5 kbps


def test_models_lists_the_shipped_models_default_first() -> None:
    result = run("models", "--json")
    assert result.returncode == 0, result.stderr
    rows = json.loads(result.stdout)
    assert [r["name"] for r in rows][:1] == ["soundstream16k-lyra2x"] and rows[0]["default"]
    by_name = {r["name"]: r for r in rows}
    assert by_name["soundstream16k-lyra2x"]["kbps_per_stage"] == pytest.approx(0.2)
    assert by_name["soundstream16k-lyra2x"]["max_kbps"] == pytest.approx(16.0)
    assert by_name["soundstream16k-lyra2"]["max_kbps"] == pytest.approx(9.2)
    assert by_name["ssc16k"]["kbps_per_stage"] == pytest.approx(0.5)
    assert all("lyra" in by_name[name]["weights_from"] for name in ("soundstream16k-lyra2", "soundstream16k-lyra2x"))


def test_decode_and_info_pick_the_model_that_encoded_the_file(tmp_path: Path) -> None:
    src = tmp_path / "a.wav"
    _tone(src, 16_000, 1, 0.2)
    ssc = tmp_path / "a.ssc"
    assert run("encode", str(src), str(ssc), "--model", "ssc16k", "--quiet").returncode == 0
    info = json.loads(run("info", str(ssc), "--json").stdout)
    assert info["model_id"].startswith("ssc16k-") and info["model_matches"] and info["bits_per_stage"] == 10
    assert run("decode", str(ssc), str(tmp_path / "a.out.wav"), "--quiet").returncode == 0
    wrong = run("decode", str(ssc), str(tmp_path / "b.out.wav"), "--model", "soundstream16k-lyra2", "--quiet")
    assert wrong.returncode == 2 and wrong.stderr.startswith("error:") and "encoded by model ssc16k" in wrong.stderr


def test_unknown_model_and_missing_denoise_are_one_line_errors(tmp_path: Path) -> None:
    src = tmp_path / "a.wav"
    _tone(src, 16_000, 1, 0.2)
    missing = run("encode", str(src), str(tmp_path / "x.ssc"), "--model", "nonesuch")
    assert missing.returncode == 2 and "no model 'nonesuch'" in missing.stderr and "soundstream16k-lyra2" in missing.stderr
    assert len(missing.stderr.strip().splitlines()) == 1
    no_switch = run("encode", str(src), str(tmp_path / "y.ssc"), "--denoise")
    assert no_switch.returncode == 2 and "no denoise switch" in no_switch.stderr


def test_import_lyra_refuses_a_folder_without_the_models(tmp_path: Path) -> None:
    result = run("import-lyra", str(tmp_path), "--out", str(tmp_path / "w"))
    assert result.returncode == 2 and result.stderr.startswith("error:") and "missing" in result.stderr


def test_zero_length_audio_is_refused(tmp_path: Path) -> None:
    src = tmp_path / "empty.wav"
    sf.write(src, np.zeros(0), 16_000)
    assert_clean_error(run("encode", str(src), str(tmp_path / "e.ssc")), "no audio")


def test_non_audio_file_is_refused(tmp_path: Path) -> None:
    src = tmp_path / "notes.wav"
    src.write_text("this is not audio\n" * 20)
    assert_clean_error(run("roundtrip", str(src), str(tmp_path / "x.wav")), "not a readable audio file")


def test_missing_input(tmp_path: Path) -> None:
    assert_clean_error(run("encode", str(tmp_path / "nope.wav"), str(tmp_path / "x.ssc")), "no such file")


def test_foreign_and_corrupt_ssc_are_refused(tmp_path: Path) -> None:
    wav = tmp_path / "a.wav"
    _tone(wav, 16_000, 1, 0.3)
    assert_clean_error(run("decode", str(wav), str(tmp_path / "b.wav")), "bad magic")
    ssc = tmp_path / "a.ssc"
    assert run("encode", str(wav), str(ssc), "--quiet").returncode == 0
    data = bytearray(ssc.read_bytes())
    data[len(data) // 2] ^= 0x40
    bad = tmp_path / "bad.ssc"
    bad.write_bytes(bytes(data))
    assert_clean_error(run("decode", str(bad), str(tmp_path / "c.wav")), "corrupt")
    cut = tmp_path / "cut.ssc"
    cut.write_bytes(ssc.read_bytes()[:-9])
    assert_clean_error(run("info", str(cut)), "truncated")


def test_outputs_are_never_overwritten_without_force(tmp_path: Path) -> None:
    wav = tmp_path / "a.wav"
    _tone(wav, 16_000, 1, 0.3)
    target = tmp_path / "keep.ssc"
    target.write_bytes(b"precious")
    assert_clean_error(run("encode", str(wav), str(target)), "already exists")
    assert target.read_bytes() == b"precious"
    assert_clean_error(run("roundtrip", str(wav), str(wav), "--force"), "overwrite the input")


@pytest.mark.parametrize(
    "args, fragment", [(["--kbps", "-1"], "positive"), (["--kbps", "nan"], "positive"), (["--kbps", "inf"], "positive"), (["--layers", "99"], "--layers")]
)
def test_bad_rate_arguments(tmp_path: Path, args: list[str], fragment: str) -> None:
    wav = tmp_path / "a.wav"
    _tone(wav, 16_000, 1, 0.3)
    assert_clean_error(run("encode", str(wav), str(tmp_path / "o.ssc"), *args), fragment)


def test_output_in_a_missing_folder_fails_before_any_work(tmp_path: Path) -> None:
    wav = tmp_path / "a.wav"
    _tone(wav, 16_000, 1, 0.3)
    assert_clean_error(run("encode", str(wav), str(tmp_path / "nodir" / "x.ssc")), "no such folder")


def test_decode_refuses_a_bad_output_rate(tmp_path: Path) -> None:
    wav = tmp_path / "a.wav"
    _tone(wav, 16_000, 1, 0.3)
    ssc = tmp_path / "a.ssc"
    assert run("encode", str(wav), str(ssc), "--quiet").returncode == 0
    for rate in ("-1", "0", "2000000"):
        assert_clean_error(run("decode", str(ssc), str(tmp_path / f"o{rate}.wav"), "--rate", rate), "--rate")


def test_ssvoip_console_script_reaches_the_codec_commands(tmp_path: Path) -> None:
    exe = Path(sys.executable).with_name("ssvoip")
    if not exe.exists():
        pytest.skip("package not installed with its console script (run ./setup.sh)")
    result = subprocess.run([str(exe), "info", str(tmp_path / "missing.ssc")], capture_output=True, text=True, timeout=120)
    assert_clean_error(result, "no such file")


def test_extend_stages_refuses_missing_data_and_an_existing_model_in_one_line(tmp_path: Path) -> None:
    missing = run("extend-stages", "--data", str(tmp_path / "nodata"), "--out", str(tmp_path))
    assert missing.returncode == 2 and missing.stderr.startswith("error:") and "no training data" in missing.stderr
    taken = run("extend-stages", "--data", str(tmp_path / "nodata"), "--name", "soundstream16k-lyra2x")
    assert taken.returncode == 2 and "already holds soundstream16k-lyra2x" in taken.stderr
