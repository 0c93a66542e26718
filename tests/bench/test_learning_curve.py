"""The learning-curve table: runs chained into one lineage, rows thinned, bad arguments refused."""

from __future__ import annotations

import csv
from pathlib import Path

import pytest

from bench.learning_curve import curve, main

FIELDS = ["step", "seconds", "mel", "val_mel_3k", "val_mel_6k", "val_mel_12k", "val_pesq_6k"]


def _log(path: Path, rows: list[tuple[int, float, float]]) -> Path:
    """rows: (step, seconds, val mel); training rows without validation in between."""
    with path.open("w", newline="") as f:
        writer = csv.DictWriter(f, FIELDS)
        writer.writeheader()
        for step, seconds, val in rows:
            writer.writerow({"step": step - 1, "seconds": seconds - 1, "mel": 1.0})
            writer.writerow({"step": step, "seconds": seconds, "mel": 0.9, "val_mel_3k": val, "val_mel_6k": val, "val_mel_12k": val, "val_pesq_6k": 1.1})
    return path


def test_runs_chain_their_hours_and_every_keeps_each_runs_last(tmp_path: Path) -> None:
    first = _log(tmp_path / "a-run-log.csv", [(500, 1800.0, 0.5), (1000, 3600.0, 0.4), (1500, 5400.0, 0.35)])
    second = _log(tmp_path / "b-run-log.csv", [(500, 3600.0, 0.3), (1000, 7200.0, 0.25)])
    table = curve([first, second], every=2).splitlines()
    body = [[c.strip() for c in line.strip("|").split("|")] for line in table[2:]]
    assert [(r[0], r[1], r[2]) for r in body] == [("a", "500", "0.50"), ("a", "1500", "1.50"), ("b", "500", "2.50"), ("b", "1000", "3.50")]
    assert body[-1][8] == "0.250" and body[0][4] == "-"  # val mel 6k; no PESQ at 3 kbps in this log
    assert all(line.count("|") == table[0].count("|") for line in table)


def test_a_missing_log_is_one_error_line(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main([str(tmp_path / "nope.csv")]) == 2
    err = capsys.readouterr().err
    assert err.startswith("error: no such file") and err.count("\n") == 1
