"""The bandwidth estimate (with the layer controller) against a simulated bottleneck."""

from __future__ import annotations

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


def test_loss_alone_cuts_the_rate() -> None:
    rows = simulate([(10.0, 64_000)], loss=0.2)
    assert rows[-1]["sent"] < rows[0]["sent"]
    clean = simulate([(10.0, 64_000)], loss=0.0)
    assert clean[-1]["sent"] >= rows[-1]["sent"]


def test_delay_alone_cuts_the_rate() -> None:
    est = BandwidthEstimator(initial_bps=40_000)
    for i in range(5):
        est.on_feedback(0.1 * i, 0.0, queue_delay_ms=120.0, received_bps=20_000)
    assert est.estimate <= 0.85 * 20_000 + 1


def test_loss_between_the_thresholds_holds_the_estimate() -> None:
    est = BandwidthEstimator(initial_bps=20_000)
    for i in range(20):
        est.on_feedback(0.1 * i, 0.05, queue_delay_ms=0.0, received_bps=20_000)
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
        est.on_feedback(0.1 * i, 0.9, 0.0, received_bps=None)
    assert est.estimate == 4_000
