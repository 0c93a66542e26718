"""RFC 3550 receiver statistics with an injected clock."""

from __future__ import annotations

import random

import pytest

from protocol.stats import ReceiveStats

RATE, HOP = 16_000, 320


def feed(stats: ReceiveStats, seqs: list[int], start_ts: int = 0, delay=lambda i: 0.05) -> None:
    for i, seq in enumerate(seqs):
        n = (seq - seqs[0]) % 65536
        stats.on_packet(seq % 65536, (start_ts + n * HOP) % 2**32, n * 0.02 + delay(i))


def test_clean_stream_has_no_loss_and_no_jitter() -> None:
    s = ReceiveStats(RATE)
    feed(s, list(range(100)))
    assert (s.expected, s.received, s.lost) == (100, 100, 0)
    assert s.jitter_ms == pytest.approx(0.0, abs=1e-6)


def test_loss_counted_across_sequence_wrap() -> None:
    s = ReceiveStats(RATE)
    seqs = [x for x in range(65500, 65500 + 100) if x % 10 != 3]  # 10 % lost, wraps at 65536
    feed(s, seqs, start_ts=2**32 - 50 * HOP)  # the timestamp wraps too
    assert s.expected == 100
    assert s.lost == 10
    assert s.extended_max == 65500 + 99
    report = s.interval()
    assert report.loss_fraction == pytest.approx(0.1)
    assert s.jitter_ms == pytest.approx(0.0, abs=1e-3)  # wrap does not fake jitter


def test_reordering_and_duplicates() -> None:
    s = ReceiveStats(RATE)
    feed(s, [0, 1, 3, 2, 4, 4, 5])
    assert s.expected == 6
    assert s.received == 7  # the duplicate counts, as in RFC 3550
    assert s.lost == -1
    assert not s.on_packet(40_000, 0, 1.0)  # a wild jump is not accounted: counted apart, reported
    assert not s.on_packet(65_000, 0, 1.0)  # nor one far behind
    assert s.received == 7 and s.out_of_order_discarded == 2


def test_jitter_estimates_mean_delay_variation() -> None:
    rng = random.Random(1)
    delays = [0.05 + rng.uniform(0, 0.02) for _ in range(3000)]
    s = ReceiveStats(RATE)
    feed(s, list(range(3000)), delay=lambda i: delays[i])
    # For i.i.d. uniform(0, a) delays, E|D| = a / 3.
    assert s.jitter_ms == pytest.approx(20 / 3, rel=0.25)


def test_interval_reports_are_per_interval() -> None:
    s = ReceiveStats(RATE)
    feed(s, [0, 1, 2, 3])
    assert s.interval().loss_fraction == 0.0
    feed(s, [4, 6, 8], start_ts=4 * HOP)
    report = s.interval()
    assert (report.expected, report.received) == (5, 3)
