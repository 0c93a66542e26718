"""The denoise table: a block of rows per input condition, the goals read from it, the model chosen."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import soundfile as sf

from codec.cli import main
from codec.train.denoise_evaluation import INPUT, DenoiseRow, denoise_model_name, evaluate_denoise, goal_lines, markdown_table
from codec.train.evaluate import Scorer
from codec.weights import describe_model, load_model

ROOT = Path(__file__).resolve().parents[2]


def clips(count: int = 2, seconds: float = 0.6) -> list[np.ndarray]:
    audio, rate = sf.read(ROOT / "codec" / "samples" / "speech.wav", dtype="float32")
    n = int(rate * seconds)
    return [audio[i * n : (i + 1) * n] for i in range(count)]


def test_each_condition_has_the_input_ours_off_and_on_and_each_enhancer_alone_and_before_ours() -> None:
    pytest.importorskip("livekit.rtc", reason="the frontend extra's livekit is not installed")
    from codec.baselines.webrtc_ns import WebRtcNoiseSuppressor

    model, model_id = load_model(None, "ssc16k")
    # DNSMOS is left out here (its first call compiles librosa's kernels for seconds); the command always scores it.
    result = evaluate_denoise(model, model_id, clips(), [5.0], [6.0], [WebRtcNoiseSuppressor()], Scorer())
    systems = [INPUT, "ours", "ours +denoise", "webrtc ns (no codec)", "webrtc ns -> ours"]
    assert [(r.snr_db, r.system) for r in result.rows] == [(snr, s) for snr in (None, 5.0) for s in systems]
    assert all(r.clips == 2 and 0 <= r.scores["stoi"] <= 1 for r in result.rows)
    assert [r.kbps for r in result.rows[:5]] == [None, 6.0, 6.0, None, 6.0]
    assert sum(result.noise_kinds["5 dB"].values()) == 2
    clean_input = result.rows[0].scores
    assert clean_input["pesq_wb"] > 4.4 and clean_input["stoi"] > 0.99  # the clean clip against itself
    table = markdown_table(result.rows).splitlines()
    assert len(table) == 2 + 10 and table[2].startswith("| clean | input (no codec) | - |") and table[7].startswith("| 5 dB | input (no codec) |")
    assert table[2].endswith("| - | - | - |")  # no DNSMOS asked for: dashes, not made-up numbers


def row(snr: float | None, system: str, kbps: float | None, pesq: float, ovrl: float) -> DenoiseRow:
    return DenoiseRow(snr, system, kbps, 7, {"pesq_wb": pesq, "stoi": 0.9, "dnsmos_ovrl": ovrl, "dnsmos_sig": 3.0, "dnsmos_bak": 3.0})


def test_the_goals_are_read_from_the_rows() -> None:
    rows = [
        row(None, "ours", 6.0, 3.00, 3.0),
        row(None, "ours +denoise", 6.0, 2.97, 3.1),
        row(0.0, "ours +denoise", 6.0, 1.5, 2.50),
        row(0.0, "deepfilternet3 -> ours", 6.0, 1.6, 2.80),
        row(5.0, "ours +denoise", 6.0, 1.8, 2.85),
        row(5.0, "deepfilternet3 -> ours", 6.0, 1.9, 2.90),
    ]
    lines = goal_lines(rows)
    assert lines[0] == "6 kbps, DNSMOS OVRL of ours +denoise minus deepfilternet3 -> ours (goal >= -0.2): 0 dB -0.30 (missed), 5 dB -0.05 (met)"
    assert lines[1] == "6 kbps, clean speech: the switch costs 0.03 PESQ-WB (goal <= 0.05: met)"
    assert goal_lines([r for r in rows if r.system != "deepfilternet3 -> ours"]) == [lines[1]]


def test_without_a_model_named_the_table_scores_one_that_has_the_switch() -> None:
    name = denoise_model_name(None, None)
    assert name is not None and describe_model(name)["config"]["denoise_conditioning"]
    assert denoise_model_name(None, "soundstream16k-lyra2") == "soundstream16k-lyra2"


def test_a_model_without_the_switch_is_a_clean_error(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    pytest.importorskip("speechmos", reason="the eval extra's speechmos is not installed")
    sf.write(tmp_path / "a.wav", clips(1)[0], 16_000)
    assert main(["eval", str(tmp_path), "--noise-snr", "5", "--enhancers", "--model", "soundstream16k-lyra2", "--quiet"]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "does not have" in err and "denoise switch" in err
