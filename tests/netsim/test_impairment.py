"""The pure impaired path, measured against its settings in simulated time with fixed seeds."""

from __future__ import annotations

import statistics
from itertools import pairwise

import pytest
from hypothesis import given
from hypothesis import strategies as st
from pydantic import ValidationError

from netsim.impairment import BernoulliLoss, GilbertElliottLoss, ImpairedPath, ImpairmentConfig


def numbered(i: int, size: int = 60) -> bytes:
    return i.to_bytes(4, "big") + bytes(size - 4)


def seq(data: bytes) -> int:
    return int.from_bytes(data[:4], "big")


def drain(path: ImpairedPath) -> list[tuple[float, bytes]]:
    """Every packet with its exact arrival time, by jumping from one due time to the next."""
    out: list[tuple[float, bytes]] = []
    while (t := path.next_due_time()) is not None:
        out.extend((t, d) for d in path.due(t))
    return out


def offer(path: ImpairedPath, n: int, interval: float, size: int = 60) -> dict[int, float]:
    """n numbered packets every `interval` s; returns seq -> send time."""
    sent = {}
    for i in range(n):
        path.submit(numbered(i, size), i * interval)
        sent[i] = i * interval
    return sent


def test_clear_config_passes_everything_at_once() -> None:
    path = ImpairedPath(ImpairmentConfig())
    offer(path, 100, 0.02)
    got = drain(path)
    assert [seq(d) for _, d in got] == list(range(100))
    assert all(t == pytest.approx(seq(d) * 0.02) for t, d in got)
    assert path.counters.delivered == path.counters.sent == 100
    assert ImpairmentConfig().is_clear()


def test_bernoulli_loss_rate() -> None:
    path = ImpairedPath(ImpairmentConfig(loss=BernoulliLoss(rate=0.1)), rng=7)
    offer(path, 50_000, 0.02)
    drain(path)
    c = path.counters
    assert c.dropped_loss / c.sent == pytest.approx(0.10, abs=0.01)
    assert c.delivered + c.dropped_loss == c.sent
    assert c.dropped_loss_bytes == 60 * c.dropped_loss


def burst_lengths(lost: list[bool]) -> list[int]:
    runs, run = [], 0
    for x in lost:
        if x:
            run += 1
        elif run:
            runs.append(run)
            run = 0
    return runs + ([run] if run else [])


def test_gilbert_elliott_average_loss_and_burst_length() -> None:
    model = GilbertElliottLoss.from_average(0.15, 3.0)
    assert model.mean_loss() == pytest.approx(0.15)
    assert 1 / model.p_bad_good == pytest.approx(3.0)
    path = ImpairedPath(ImpairmentConfig(loss=model), rng=11)
    n = 100_000
    offer(path, n, 0.02)
    got = {seq(d) for _, d in drain(path)}
    lost = [i not in got for i in range(n)]
    assert sum(lost) / n == pytest.approx(0.15, abs=0.015)
    assert statistics.mean(burst_lengths(lost)) == pytest.approx(3.0, rel=0.1)
    # Bernoulli at the same rate has bursts of 1 / (1 - p) ~ 1.18: the difference is the point.
    path = ImpairedPath(ImpairmentConfig(loss=BernoulliLoss(rate=0.15)), rng=11)
    offer(path, n, 0.02)
    got = {seq(d) for _, d in drain(path)}
    assert statistics.mean(burst_lengths([i not in got for i in range(n)])) == pytest.approx(1 / 0.85, rel=0.05)


def test_gilbert_elliott_with_loss_in_both_states() -> None:
    model = GilbertElliottLoss(p_good_bad=0.05, p_bad_good=0.25, loss_bad=0.5, loss_good=0.01)
    path = ImpairedPath(ImpairmentConfig(loss=model), rng=3)
    offer(path, 60_000, 0.02)
    drain(path)
    assert path.counters.dropped_loss / path.counters.sent == pytest.approx(model.mean_loss(), abs=0.01)


@pytest.mark.parametrize("distribution,std", [("normal", 10.0), ("uniform", 30.0 / 3**0.5)])
def test_delay_mean_and_spread(distribution: str, std: float) -> None:
    jitter = 10.0 if distribution == "normal" else 30.0
    cfg = ImpairmentConfig(delay_ms=50, jitter_ms=jitter, jitter_distribution=distribution)  # type: ignore[arg-type]
    path = ImpairedPath(cfg, rng=5)
    sent = offer(path, 20_000, 0.02)
    delays = [1000 * (t - sent[seq(d)]) for t, d in drain(path)]
    assert statistics.mean(delays) == pytest.approx(50.0, abs=0.5)
    assert statistics.stdev(delays) == pytest.approx(std, rel=0.05)
    if distribution == "uniform":
        assert 20.0 - 1e-9 <= min(delays) and max(delays) <= 80.0 + 1e-9


def test_delay_never_negative() -> None:
    path = ImpairedPath(ImpairmentConfig(delay_ms=5, jitter_ms=50), rng=1)
    sent = offer(path, 5_000, 0.02)
    assert min(t - sent[seq(d)] for t, d in drain(path)) >= 0.0


def test_udp_jitter_reorders() -> None:
    path = ImpairedPath(ImpairmentConfig(delay_ms=50, jitter_ms=30, jitter_distribution="uniform"), rng=2)
    offer(path, 5_000, 0.02)
    order = [seq(d) for _, d in drain(path)]
    late = sum(1 for a, b in pairwise(order) if b < a)
    assert sorted(order) == list(range(5_000))
    assert late / len(order) > 0.1  # 50 +/- 30 ms with packets 20 ms apart: many overtakes


def test_stream_mode_keeps_order_and_turns_loss_into_rto_delay() -> None:
    cfg = ImpairmentConfig(delay_ms=50, jitter_ms=30, jitter_distribution="uniform", loss=BernoulliLoss(rate=0.1), tcp_rto_ms=200)
    path = ImpairedPath(cfg, mode="stream", rng=2)
    sent = offer(path, 5_000, 0.02)
    got = drain(path)
    assert [seq(d) for _, d in got] == list(range(5_000))  # nothing dropped, nothing reordered
    times = [t for t, _ in got]
    assert times == sorted(times)
    c = path.counters
    assert c.dropped_loss == c.dropped_queue == 0
    assert c.retransmitted / c.sent == pytest.approx(0.1 / 0.9, rel=0.15)  # a chunk retried while lost
    delays = [t - sent[seq(d)] for t, d in got]
    assert max(delays) >= 0.2 + 0.02  # an RTO on top of the path delay
    assert min(delays) >= 0.02


def test_rate_cap_throughput_and_drop_tail() -> None:
    # 72-byte packets + 28 bytes overhead every 20 ms = 40 kbit/s offered into a 24 kbit/s link.
    cfg = ImpairmentConfig(rate_kbps=24, queue_ms=200, overhead_bytes=28)
    path = ImpairedPath(cfg)
    sent = offer(path, 3_000, 0.02, size=72)  # 60 s
    got = drain(path)
    c = path.counters
    span = got[-1][0] - got[0][0]
    assert c.delivered_wire_bytes * 8 / span / 1000 == pytest.approx(24.0, rel=0.01)
    assert c.delivered_wire_bytes == c.delivered_bytes + 28 * c.delivered
    assert c.dropped_queue / c.sent == pytest.approx(1 - 24 / 40, abs=0.02)
    tx = 100 * 8 / 24_000
    assert max(t - sent[seq(d)] for t, d in got) <= 0.2 + tx + 1e-9  # queue wait capped at queue_ms


def test_rate_cap_under_capacity_adds_only_serialisation() -> None:
    path = ImpairedPath(ImpairmentConfig(rate_kbps=24, queue_ms=200, overhead_bytes=28))
    sent = offer(path, 1_000, 0.04, size=72)  # 20 kbit/s of wire bytes
    got = drain(path)
    assert path.counters.dropped_queue == 0
    assert all(t - sent[seq(d)] == pytest.approx(100 * 8 / 24_000) for t, d in got)


def test_overhead_counts_against_the_cap() -> None:
    # 50 bytes every 20 ms = 20 kbit/s: fits 24 kbit/s without overhead, not with 40 bytes of it.
    bare = ImpairedPath(ImpairmentConfig(rate_kbps=24, queue_ms=100))
    offer(bare, 1_000, 0.02, size=50)
    assert bare.counters.dropped_queue == 0
    wired = ImpairedPath(ImpairmentConfig(rate_kbps=24, queue_ms=100, overhead_bytes=40))
    offer(wired, 1_000, 0.02, size=50)
    assert wired.counters.dropped_queue / 1_000 == pytest.approx(1 - 24 / 36, abs=0.02)
    # overhead is per segment: a 3000-byte chunk with 1448-byte segments pays it three times
    assert ImpairmentConfig(overhead_bytes=40).wire_bytes(3000) == 3000 + 3 * 40


def test_queue_bytes_limit() -> None:
    cfg = ImpairmentConfig(rate_kbps=64, queue_bytes=2_000)
    path = ImpairedPath(cfg)
    for i in range(200):  # a burst of 200 x 100 bytes at once
        path.submit(numbered(i, 100), 0.0)
    assert path.backlog_bytes(0.0) <= 2_000 + 1e-6
    assert path.counters.delivered + path.in_flight == 20
    assert path.counters.dropped_queue == 180


def test_stream_mode_back_pressure_instead_of_drops() -> None:
    cfg = ImpairmentConfig(rate_kbps=8, queue_ms=100)
    path = ImpairedPath(cfg, mode="stream")
    now = 0.0
    fed = 0
    while now < 10.0:  # a reader that only reads while the path accepts
        if path.accepting(now):
            path.submit(bytes(100), now)
            fed += 1
        now = max(now + 0.001, path.next_accept_time(now))
    got = drain(path)
    assert path.counters.dropped_queue == 0
    assert path.backlog_bytes(now) <= 100 * 2
    assert fed * 800 / 10.0 == pytest.approx(8_000, rel=0.05)  # the sender was held to the cap
    assert len(got) == fed


def test_disarmed_passes_through_then_arm_impairs() -> None:
    path = ImpairedPath(ImpairmentConfig(loss=BernoulliLoss(rate=1.0), delay_ms=100), armed=False)
    offer(path, 10, 0.02)
    assert len(path.due(0.2)) == 10
    path.arm()
    path.submit(b"x", 1.0)
    assert path.due(5.0) == [] and path.counters.dropped_loss == 1
    path.disarm()
    path.submit(b"y", 6.0)
    assert path.due(6.0) == [b"y"]


def test_set_config_switches_live() -> None:
    path = ImpairedPath(ImpairmentConfig(delay_ms=10))
    path.submit(b"a", 0.0)
    path.set_config(ImpairmentConfig(delay_ms=100))
    path.submit(b"b", 0.0)
    assert drain(path) == [(0.01, b"a"), (0.1, b"b")]


def test_same_seed_same_outcome() -> None:
    cfg = ImpairmentConfig(loss=GilbertElliottLoss.from_average(0.1, 2), jitter_ms=20, delay_ms=40)
    runs = []
    for _ in range(2):
        path = ImpairedPath(cfg, rng=42)
        offer(path, 2_000, 0.02)
        runs.append(drain(path))
    assert runs[0] == runs[1]


def test_config_validation() -> None:
    with pytest.raises(ValidationError, match="not both"):
        ImpairmentConfig(rate_kbps=10, queue_ms=100, queue_bytes=1000)
    with pytest.raises(ValidationError, match="needs a rate cap"):
        ImpairmentConfig(queue_ms=100)
    with pytest.raises(ValidationError):
        ImpairmentConfig(loss=BernoulliLoss(rate=1.5))
    with pytest.raises(ValidationError):
        ImpairmentConfig(delay_ms=-1)
    with pytest.raises(ValueError):
        GilbertElliottLoss.from_average(0.1, 0.5)
    with pytest.raises(ValueError):
        ImpairedPath(mode="bogus")  # type: ignore[arg-type]
    cfg = ImpairmentConfig.model_validate({"loss": {"kind": "gilbert_elliott", "p_good_bad": 0.1, "p_bad_good": 0.5}})
    assert isinstance(cfg.loss, GilbertElliottLoss)


configs = st.builds(
    ImpairmentConfig,
    loss=st.one_of(st.none(), st.builds(BernoulliLoss, rate=st.floats(0, 0.5))),
    delay_ms=st.floats(0, 200),
    jitter_ms=st.floats(0, 100),
    jitter_distribution=st.sampled_from(["normal", "uniform"]),
    rate_kbps=st.one_of(st.none(), st.floats(1, 1000)),
    segment_bytes=st.integers(1, 2000),
)


@given(
    data=st.binary(min_size=0, max_size=5_000),
    cuts=st.lists(st.integers(0, 5_000), max_size=40),
    gaps=st.lists(st.floats(0, 0.1), min_size=1, max_size=40),
    cfg=configs,
    seed=st.integers(0, 2**32),
)
def test_stream_mode_preserves_bytes_for_any_chunking(data: bytes, cuts: list[int], gaps: list[float], cfg: ImpairmentConfig, seed: int) -> None:
    bounds = sorted({0, len(data), *(c for c in cuts if c <= len(data))})
    path = ImpairedPath(cfg, mode="stream", rng=seed)
    now = 0.0
    for k, (a, b) in enumerate(pairwise(bounds)):
        now += gaps[k % len(gaps)]
        path.submit(data[a:b], now)
    got = drain(path)
    assert b"".join(d for _, d in got) == data
    assert [t for t, _ in got] == sorted(t for t, _ in got)


@given(sizes=st.lists(st.integers(1, 300), min_size=1, max_size=200), cfg=configs, seed=st.integers(0, 2**32))
def test_datagram_mode_delivers_a_subset_intact(sizes: list[int], cfg: ImpairmentConfig, seed: int) -> None:
    path = ImpairedPath(cfg, rng=seed)
    packets = [i.to_bytes(4, "big") + bytes([i % 256]) * n for i, n in enumerate(sizes)]
    for i, p in enumerate(packets):
        path.submit(p, i * 0.01)
    got = [d for _, d in drain(path)]
    assert len(set(got)) == len(got) and set(got) <= set(packets)
    c = path.counters
    assert c.delivered + c.dropped_loss + c.dropped_queue == c.sent == len(packets)
