"""Trace files: good ones parse into step functions, malformed ones fail with one clear line."""

from __future__ import annotations

from pathlib import Path

import pytest

from netsim.impairment import BernoulliLoss, GilbertElliottLoss, ImpairedPath, ImpairmentConfig
from netsim.trace import Trace, TraceError, TracePlayer, load_trace, parse_csv, parse_jsonl

GOOD_CSV = """# capacity drop
time_s,capacity_kbps,loss,delay_ms,jitter_ms
0,16,,20,
10,4,0.05,,
25.5,16,0,,5
"""


def test_csv_parses_and_steps() -> None:
    trace = parse_csv(GOOD_CSV)
    assert trace.times == [0.0, 10.0, 25.5]
    assert trace.row_at(-1).capacity_kbps == 16
    assert trace.row_at(9.999).capacity_kbps == 16
    assert trace.row_at(10).capacity_kbps == 4
    assert trace.row_at(1e6).capacity_kbps == 16
    assert trace.next_change_after(0) == 10 and trace.next_change_after(25.5) is None
    base = ImpairmentConfig(queue_ms=200, rate_kbps=32, jitter_ms=3, overhead_bytes=28, loss=GilbertElliottLoss(p_good_bad=0.1, p_bad_good=0.5))
    first = trace.config_at(0, base)
    assert (first.rate_kbps, first.delay_ms, first.jitter_ms, first.queue_ms, first.overhead_bytes) == (16, 20, 3, 200, 28)
    assert first.loss == base.loss  # an empty cell keeps the base
    mid = trace.config_at(12, base)
    assert mid.rate_kbps == 4 and mid.loss == BernoulliLoss(rate=0.05) and mid.delay_ms == 0
    assert trace.config_at(30, base).jitter_ms == 5


def test_jsonl_parses() -> None:
    text = '{"time_s": 0, "capacity_kbps": 8}\n\n{"time_s": 1.5, "loss": 0.2, "delay_ms": null}\n'
    trace = parse_jsonl(text)
    assert trace.row_at(2).loss == 0.2 and trace.row_at(2).capacity_kbps is None


def test_load_trace_by_suffix(tmp_path: Path) -> None:
    (tmp_path / "t.csv").write_text(GOOD_CSV)
    (tmp_path / "t.jsonl").write_text('{"time_s": 0, "loss": 0.1}\n')
    assert len(load_trace(tmp_path / "t.csv").rows) == 3
    assert load_trace(tmp_path / "t.jsonl").rows[0].loss == 0.1
    (tmp_path / "t.txt").write_text("x")
    with pytest.raises(TraceError, match="unknown trace format"):
        load_trace(tmp_path / "t.txt")
    with pytest.raises(TraceError, match="cannot read"):
        load_trace(tmp_path / "missing.csv")


@pytest.mark.parametrize(
    "text,message",
    [
        ("", "no header"),
        ("time_s,capacity\n0,16\n", "t.csv:1: unknown column 'capacity'"),
        ("capacity_kbps\n16\n", "t.csv:1: the header has no time_s column"),
        ("time_s,loss,loss\n0,0,0\n", "named twice"),
        ("time_s,loss\n0,abc\n", "t.csv:2: loss is not a number: 'abc'"),
        ("time_s,loss\n0,1.5\n", "t.csv:2: loss: Input should be less than or equal to 1"),
        ("time_s,loss\n0,0.1,3\n", "t.csv:2: 3 cells, the header has 2"),
        ("time_s,loss\n,0.1\n", "t.csv:2: time_s is empty"),
        ("time_s,capacity_kbps\n0,0\n", "capacity_kbps: Input should be greater than 0"),
        ("time_s,capacity_kbps\n1,16\n", "first row must be at time_s 0"),
        ("time_s,capacity_kbps\n0,16\n5,8\n5,4\n", "time_s must increase: 5 after 5"),
        ("time_s,capacity_kbps\n", "at least 1 item"),
        ("time_s,delay_ms\n0,nan\n", "delay_ms"),
    ],
)
def test_malformed_csv(text: str, message: str) -> None:
    with pytest.raises(TraceError) as info:
        parse_csv(text, "t.csv")
    assert message in str(info.value)
    assert "\n" not in str(info.value)


@pytest.mark.parametrize(
    "text,message",
    [
        ("{not json}\n", "t.jsonl:1: not JSON"),
        ("[1, 2]\n", "t.jsonl:1: expected a JSON object, got list"),
        ('{"time_s": 0, "bandwidth": 3}\n', "t.jsonl:1: bandwidth: Extra inputs are not permitted"),
        ('{"loss": 0.1}\n', "t.jsonl:1: time_s: Field required"),
        ('{"time_s": 0, "loss": "x"}\n', "t.jsonl:1: loss"),
    ],
)
def test_malformed_jsonl(text: str, message: str) -> None:
    with pytest.raises(TraceError) as info:
        parse_jsonl(text, "t.jsonl")
    assert message in str(info.value)
    assert "\n" not in str(info.value)


def test_player_follows_the_trace_in_injected_time() -> None:
    trace = parse_csv("time_s,capacity_kbps\n0,16\n10,4\n25,16\n")
    player = TracePlayer(trace, ImpairmentConfig(queue_ms=100, rate_kbps=100))
    assert player.update(5.0) is None and player.next_change_time() is None  # not started
    assert player.start(100.0).rate_kbps == 16
    assert player.next_change_time() == 110.0
    assert player.update(105.0) is None
    cfg = player.update(110.0)
    assert cfg is not None and cfg.rate_kbps == 4
    assert player.next_change_time() == 125.0
    assert player.set_base(ImpairmentConfig(queue_ms=50, rate_kbps=100)).queue_ms == 50
    cfg = player.update(126.0)
    assert cfg is not None and cfg.rate_kbps == 16 and cfg.queue_ms == 50
    assert player.next_change_time() is None


def test_trace_drives_a_path_in_simulated_time() -> None:
    """Capacity 16 -> 4 -> 16 kbit/s: the delivered rate follows each step."""
    trace = parse_csv("time_s,capacity_kbps\n0,16\n10,4\n25,16\n")
    player = TracePlayer(trace, ImpairmentConfig(queue_ms=200, rate_kbps=16, overhead_bytes=28))
    path = ImpairedPath(player.start(0.0))
    delivered: list[tuple[float, int]] = []
    for i in range(2_000):  # 40 s of 72-byte packets every 20 ms: 40 kbit/s of wire bytes
        now = i * 0.02
        if (cfg := player.update(now)) is not None:
            path.set_config(cfg)
        path.submit(bytes(72), now)
        delivered.extend((now, 100) for _ in path.due(now))

    def kbps(a: float, b: float) -> float:
        return sum(n for t, n in delivered if a <= t < b) * 8 / (b - a) / 1000

    assert kbps(2, 10) == pytest.approx(16, rel=0.05)
    assert kbps(12, 25) == pytest.approx(4, rel=0.1)
    assert kbps(27, 40) == pytest.approx(16, rel=0.05)


def test_trace_needs_rows() -> None:
    with pytest.raises(ValueError):
        Trace(rows=())
