"""`python -m bench.concealment_calls`: live calls through loss, both concealers, redundancy off and on."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from bench.concealment_calls import Case, cases, main, mean_table, table
from call.experiment import ExperimentSummary
from protocol.telemetry import Percentiles


def _summary(scenario: str, protect: bool, pesq: float, gap: int = 120) -> ExperimentSummary:
    return ExperimentSummary(
        scenario=scenario,
        transport="webrtc",
        adapt=True,
        protect=protect,
        seconds=30.0,
        pesq_wb=pesq,
        stoi=0.876,
        played_fraction=0.9512,
        longest_gap_ms=gap,
        loss_fraction=0.1034,
        redundant_played=0,
        layers_mean=57.25,
        mouth_to_ear_ms=Percentiles(p50=150.0, p95=200.0),
        sent_kbps_mean=40.0,
        relay=[],
        media_packets_by_path={"webrtc": 1000, "websocket": 0},
    )


def test_the_matrix_puts_each_ab_pair_back_to_back() -> None:
    runs = cases(["loss-5", "burst-15"], [False, True], ["repeat", "neural"], repeat=2)
    assert len(runs) == 16
    assert runs[:4] == [
        Case("loss-5", False, "repeat", 0),
        Case("loss-5", False, "neural", 0),
        Case("loss-5", False, "repeat", 1),
        Case("loss-5", False, "neural", 1),
    ]
    assert runs[0].directory(1) == "loss-5-bare-repeat" and runs[3].directory(2) == "loss-5-bare-neural-1"
    assert len({r.directory(2) for r in runs}) == 16  # no run overwrites another's files


def test_the_table_has_a_row_a_run() -> None:
    results = [(Case("loss-10", False, "repeat"), _summary("loss-10", False, 1.8512)), (Case("loss-10", True, "neural"), _summary("loss-10", True, 2.9))]
    lines = table(results).splitlines()
    assert lines[0] == "| scenario | protection | concealment | PESQ-WB | STOI | audio played | longest gap ms | loss | layers |"
    assert lines[2] == "| loss-10 | off | repeat | 1.85 | 0.88 | 95.1 % | 120 | 10.3 % | 57.2 |"
    assert lines[3].startswith("| loss-10 | on | neural | 2.90 |") and len(lines) == 4
    repeated = table([(Case("loss-10", True, "neural", 1), _summary("loss-10", True, 2.9))], repeat=2).splitlines()
    assert repeated[0].startswith("| scenario | protection | concealment | run | PESQ-WB |") and repeated[2].startswith("| loss-10 | on | neural | 2 | 2.90 |")


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["--only", "loss-7"], "invalid choice: 'loss-7'"),
        (["--repeat", "0"], "--repeat must be at least 1"),
        (["--concealment", "opus"], "invalid choice: 'opus'"),
    ],
)
def test_bad_options_exit_2(argv: list[str], message: str, capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as info:
        main(argv)
    assert info.value.code == 2 and message in capsys.readouterr().err


@pytest.mark.slow  # one 6 s WebRTC call through the relay: the model, the decoder, PESQ
def test_one_short_call(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    # 6 s: enough packets that the relay's 20 % drop some even when a loaded machine starts the media late.
    argv = ["--only", "loss-20", "--protect", "off", "--concealment", "neural", "--duration", "6", "--out", str(tmp_path), "--json"]
    assert main(argv) == 0
    out = capsys.readouterr().out.splitlines()
    run = json.loads(out[0])
    assert run["scenario"] == "loss-20" and run["concealment"] == "neural" and run["protect"] is False and run["transport"] == "webrtc" and run["seed"] == 0
    assert 0.05 <= run["loss_fraction"] <= 0.4 and run["played_fraction"] < 1.0  # the relay dropped ~20 % and nothing stood in
    assert out[1].startswith("| scenario |") and out[3].startswith("| loss-20 | off | neural |") and len(out) == 4
    assert (tmp_path / "loss-20-bare-neural" / "playout_trace.npz").is_file()


def test_repeated_cases_are_averaged() -> None:
    results = [
        (Case("burst-15", True, "neural", 0), _summary("burst-15", True, 2.0, gap=100)),
        (Case("burst-15", True, "neural", 1), _summary("burst-15", True, 2.5, gap=300)),
        (Case("burst-15", False, "neural", 0), _summary("burst-15", False, 1.5)),
    ]
    lines = mean_table(results).splitlines()
    assert lines[0] == "| scenario | protection | concealment | calls | PESQ-WB | STOI | audio played | longest gap ms | loss | layers |"
    assert lines[2] == "| burst-15 | on | neural | 2 | 2.25 | 0.88 | 95.1 % | 300 | 10.3 % | 57.2 |"
    assert lines[3].startswith("| burst-15 | off | neural | 1 | 1.50 |") and len(lines) == 4
