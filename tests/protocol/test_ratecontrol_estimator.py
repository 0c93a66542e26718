"""The bandwidth estimate (with the layer controller) against a simulated bottleneck."""

from __future__ import annotations

import random

from protocol.packets import OVERHEAD_WEBSOCKET
from protocol.ratecontrol import BandwidthEstimator, LayerController
from tests.protocol.simulated_link import STEP, Bottleneck


def simulate(capacities: list[tuple[float, float]], loss: float = 0.0) -> list[dict]:
    """capacities: (until_time_s, bps) segments. Returns one row per step."""
    est = BandwidthEstimator(initial_bps=32_000)
    ctl = LayerController(24, overhead_bytes=OVERHEAD_WEBSOCKET)
    link = Bottleneck(capacities[0][1])
    rows, t = [], 0.0
    decision = ctl.update(0.0, est.estimate)
    for until, capacity in capacities:
        link.capacity = capacity
        while t < until:
            lost, queue_ms, received = link.carry(decision.wire_bps)
            lost = max(lost, loss)
            estimate = est.on_feedback(t, lost, queue_ms, received)
            decision = ctl.update(t, estimate)
            rows.append({"t": t, "capacity": capacity, "sent": decision.wire_bps, "queue_ms": queue_ms, "layers": decision.layers})
            t = round(t + STEP, 6)
    return rows


def test_capacity_drop_and_recovery() -> None:
    rows = simulate([(20.0, 40_000), (40.0, 16_000), (70.0, 40_000)])
    after_drop = [r for r in rows if 20.0 <= r["t"] < 40.0]
    under = next(r["t"] for r in after_drop if r["sent"] <= 16_000)
    assert under - 20.0 <= 1.0  # sent bitrate under capacity within 1 s
    drained = next(r["t"] for r in after_drop if r["t"] > under and r["queue_ms"] < 150)
    assert drained - 20.0 <= 2.0  # queueing delay back under 150 ms within 2 s
    assert all(r["queue_ms"] < 150 for r in after_drop if r["t"] > 23.0)
    after_rise = [r for r in rows if r["t"] >= 40.0]
    reached = next(r["t"] for r in after_rise if r["sent"] >= 0.8 * 40_000)
    assert reached - 40.0 <= 10.0  # at least 80 % of capacity within 10 s


def test_random_loss_costs_one_cut_then_the_estimate_holds_and_grows() -> None:
    """20 % loss that stays whatever we send is the path's own: the first window cuts (it could be
    a policer), the window at the lower rate shows the same loss, and from then on it is inherent.
    Before, every report over 10 % cut again, and the estimate sank to the floor."""
    start = LayerController(24, overhead_bytes=OVERHEAD_WEBSOCKET).update(0.0, 32_000).wire_bps
    rows = simulate([(10.0, 64_000)], loss=0.2)
    assert rows[0]["sent"] < start  # one cut...
    assert rows[-1]["sent"] >= start  # ...then back up: cutting did not reduce the loss
    assert simulate([(10.0, 64_000)], loss=0.0)[-1]["sent"] >= rows[-1]["sent"]


def simulate_policer(capacities: list[tuple[float, float]], random_loss: float = 0.0, seed: int = 0) -> list[dict]:
    """A policer (a token bucket with no queue): what we send over its capacity is dropped, and
    the delay never rises. Loss and received rate over 1 s windows, as the feedback gives them."""
    rng = random.Random(seed)
    est = BandwidthEstimator(initial_bps=32_000)
    ctl = LayerController(24, overhead_bytes=OVERHEAD_WEBSOCKET)
    decision = ctl.update(0.0, est.estimate)
    window: list[tuple[float, float]] = []  # (sent, received) bits of the last 10 steps
    rows, t = [], 0.0
    for until, capacity in capacities:
        while t < until:
            sent = decision.wire_bps * STEP
            passed = min(sent, capacity * STEP) * (1 - random_loss * (0.5 + rng.random()))
            window = [*window, (sent, passed)][-10:]
            total_sent, total_received = sum(s for s, _ in window), sum(r for _, r in window)
            estimate = est.on_feedback(t, 1 - total_received / total_sent, 0.0, total_received / (len(window) * STEP))
            decision = ctl.update(t, estimate)
            rows.append({"t": t, "capacity": capacity, "sent": decision.wire_bps, "inherent": est.inherent_loss})
            t = round(t + STEP, 6)
    return rows


def test_a_policer_gets_the_rate_under_its_capacity_without_any_delay() -> None:
    """Loss that appears only over a capacity, with no queue to show it: the loss cut goes to what
    arrived, which is the policer's capacity, and that loss is never taken for the path's own."""
    for random_loss in (0.0, 0.1):  # with random loss of its own, learnt first
        rows = simulate_policer([(15.0, 200_000), (45.0, 20_000)], random_loss)
        after = [r for r in rows if r["t"] >= 15.0]
        under = next(r["t"] for r in after if r["sent"] <= 20_000)
        assert under - 15.0 <= 3.0, random_loss
        late = [r["sent"] for r in after if r["t"] >= 25.0]
        assert sum(late) / len(late) <= 1.05 * 20_000, random_loss  # it stays there, about
        assert max(r["inherent"] for r in after) <= random_loss + 0.05, random_loss


def test_a_drop_tail_queue_still_cuts_after_random_loss_was_learnt() -> None:
    """10 % random loss for 10 s (learnt as inherent), then a 16 kbit/s drop-tail bottleneck:
    its queueing delay cuts under the capacity within a second, as on a clean path."""
    rows = simulate([(10.0, 100_000), (30.0, 16_000)], loss=0.1)
    assert rows[99]["sent"] > 30_000  # the random loss did not pull it down
    after = [r for r in rows if r["t"] >= 10.0]
    under = next(r["t"] for r in after if r["sent"] <= 16_000)
    assert under - 10.0 <= 1.0
    assert all(r["queue_ms"] < 150 for r in after if r["t"] > 13.0)


def test_delay_alone_cuts_the_rate() -> None:
    est = BandwidthEstimator(initial_bps=40_000)
    for i in range(5):
        est.on_feedback(0.1 * i, 0.0, queue_delay_ms=120.0, received_bps=20_000)
    assert est.estimate <= 0.85 * 20_000 + 1


def test_loss_between_the_thresholds_holds_the_estimate() -> None:
    """Over LOSS_GROW_BELOW and within LOSS_CUT_ABOVE (4 %, as 5 % was when the cut was at 10 %)."""
    est = BandwidthEstimator(initial_bps=20_000)
    for i in range(20):
        est.on_feedback(0.1 * i, 0.04, queue_delay_ms=0.0, received_bps=20_000)
    assert est.estimate == 20_000


def test_growth_waits_for_the_sender_to_use_its_estimate() -> None:
    """An estimate far above what arrives was never tested by the path: it holds."""
    used = BandwidthEstimator(initial_bps=20_000)
    unused = BandwidthEstimator(initial_bps=20_000)
    for i in range(20):
        used.on_feedback(0.1 * i, 0.0, 0.0, received_bps=18_000)
        unused.on_feedback(0.1 * i, 0.0, 0.0, received_bps=5_000)
    assert used.estimate > 20_000 * 1.2 and unused.estimate == 20_000


def test_our_own_backlog_is_overuse_and_the_estimate_stays_in_bounds() -> None:
    est = BandwidthEstimator(initial_bps=30_000, min_bps=4_000, max_bps=40_000)
    est.on_feedback(0.0, 0.0, 0.0, received_bps=30_000, send_buffer_bytes=5_000)
    assert est.estimate <= 0.85 * 30_000 + 1
    for i in range(1, 100):
        est.on_feedback(0.1 * i, 0.0, 0.0, received_bps=est.estimate)
    assert est.estimate == 40_000
    for i in range(100, 120):
        est.on_feedback(0.1 * i, 0.0, 500.0, received_bps=1_000)
    assert est.estimate == 4_000
