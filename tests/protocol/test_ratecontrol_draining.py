"""Draining on its own: when an episode starts, how long it may last, what it allows."""

from __future__ import annotations

from protocol.ratecontrol import Drainer, DrainSettings


def test_an_episode_needs_a_queue_and_a_path_delivering_less_than_was_sent() -> None:
    drainer = Drainer(60.0, DrainSettings())
    assert not drainer.on_report(0.0, 40_000, queue_s=0.2, recent_bps=35_000)  # the path keeps up
    assert not drainer.on_report(0.1, 40_000, queue_s=0.05, recent_bps=10_000)  # no queue to speak of
    assert drainer.on_report(0.2, 40_000, queue_s=0.2, recent_bps=10_000)
    assert drainer.on_report(0.3, 10_000, queue_s=0.04, recent_bps=10_000)  # on while above half the threshold
    assert not drainer.on_report(0.4, 10_000, queue_s=0.02, recent_bps=10_000)


def test_an_episode_is_bounded_in_any_window() -> None:
    drainer = Drainer(60.0, DrainSettings(max_drain_s=0.5, window_s=10.0))
    on = [drainer.on_report(0.1 * i, 40_000, queue_s=0.5, recent_bps=5_000) for i in range(30)]
    assert sum(on) == 5 and on[:5] == [True] * 5
    assert drainer.on_report(20.0, 40_000, queue_s=0.5, recent_bps=5_000)  # a new window


def test_without_a_threshold_it_never_drains() -> None:
    drainer = Drainer(None, DrainSettings())
    assert not any(drainer.on_report(0.1 * i, 40_000, queue_s=5.0, recent_bps=1_000) for i in range(20))


def test_the_budget_and_the_thinning_have_floors() -> None:
    drainer = Drainer(60.0, DrainSettings(drain_s=0.3, max_send_every=6))
    assert drainer.budget(50_000, queue_s=0.03, recent_bps=10_000) == 10_000  # at half the threshold: all of it
    assert drainer.budget(50_000, queue_s=5.0, recent_bps=10_000) == 2_500  # never under a quarter
    assert drainer.budget(1_000, queue_s=0.2, recent_bps=10_000) == 1_000  # never above the estimate
    assert drainer.send_every(9_000, 4_000) == 3 and drainer.send_every(90_000, 1_000) == 6


def test_the_peak_sent_rate_forgets_old_plans() -> None:
    drainer = Drainer(60.0, DrainSettings())
    drainer.on_report(0.0, 50_000, 0.0, None)
    drainer.on_report(0.3, 20_000, 0.0, None)
    assert drainer.peak_sent_bps == 50_000
    drainer.on_report(0.6, 10_000, 0.0, None)  # the 50 kbit/s plan left more than 0.5 s ago
    assert drainer.peak_sent_bps == 20_000
