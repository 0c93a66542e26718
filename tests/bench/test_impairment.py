"""The network-model bench: its figures follow from the settings (what docs/netsim.md cites)."""

from __future__ import annotations

import math

import pytest

from bench.impairment import main, measure, run_path
from netsim.impairment import ImpairmentConfig


def test_figures_follow_the_settings() -> None:
    m = measure(packets=5000)
    assert abs(m["cap_delivered_kbps"] - 24.0) < 0.5  # the cap, not what was offered (40)
    assert abs(m["cap_dropped_share"] - (1 - 24 / 40)) < 0.02
    assert m["cap_longest_ms"] <= 200 + m["cap_serialisation_ms"] + 1e-6
    assert abs(m["normal_stdev_ms"] - 10.0) < 0.5
    assert abs(m["jitter50_stdev_ms"] - 30 / math.sqrt(3)) < 0.7
    assert 20.0 <= m["jitter50_min_ms"] and m["jitter50_max_ms"] <= 80.0
    assert 0.05 < m["jitter50_overtaken_share"] < 0.5  # datagrams reorder
    assert m["jitter50_stream_mean_ms"] > m["jitter50_mean_ms"]  # in order costs delay


def test_an_unimpaired_path_delivers_everything_in_order() -> None:
    path, delays = run_path(ImpairmentConfig(), packets=200)
    assert path.counters.delivered == 200 and delays.overtaken == 0 and max(delays.delays_ms) == 0.0


def test_cli_prints_a_table(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["--packets", "500"]) == 0
    assert "jitter-50, datagrams" in capsys.readouterr().out
