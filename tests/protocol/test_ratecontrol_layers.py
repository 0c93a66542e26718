"""The layer controller: the estimate as (stages, frames per packet), probing up and leaping carefully."""

from __future__ import annotations

import numpy as np

from protocol.packets import OVERHEAD_WEBRTC, OVERHEAD_WEBSOCKET, Frame, MediaPacket, encode_packet
from protocol.ratecontrol import FLOOR_FRAMES_PER_PACKET, PROBE_FAIL_S, LayerController


def test_controller_goes_down_at_once_and_up_only_after_holding() -> None:
    ctl = LayerController(24, overhead_bytes=OVERHEAD_WEBSOCKET, up_hold_s=1.0)
    high = ctl.update(0.0, 60_000)
    low = ctl.update(0.1, 20_000)
    assert low.layers < high.layers or low.frames_per_packet > high.frames_per_packet
    assert ctl.update(0.2, 60_000) == low  # not yet
    assert ctl.update(1.3, 60_000) != low  # after the hold


def test_controller_climbs_in_steps_of_a_few_layers() -> None:
    ctl = LayerController(24, overhead_bytes=OVERHEAD_WEBRTC, up_hold_s=1.0, max_up_layers=3)
    low = ctl.update(0.0, 15_000)
    assert low.frames_per_packet == 3 and low.layers <= 2
    seen = [ctl.update(0.1 * i, 24_000).layers for i in range(1, 80)]
    steps = [b - a for a, b in zip(seen, seen[1:]) if b != a]
    assert steps and all(0 < step <= 3 for step in steps)  # a probe, not a leap
    assert seen[-1] == ctl.best_fit(24_000 / 1.15).layers  # and it gets there


def test_a_refused_leap_to_fewer_frames_a_packet_backs_off() -> None:
    """Behind a cap the estimate overshoots: each leap 2 -> 1 frames a packet is undone at once;
    the next try waits 10 s, then 20 s (cap-24 over the websocket tried every 5 s)."""
    ctl = LayerController(24, overhead_bytes=OVERHEAD_WEBSOCKET, up_hold_s=1.0)
    tries, t = [], 0.0
    ctl.update(t, 30_000)
    while t < 80.0:
        t = round(t + 0.1, 6)
        before = ctl.current
        now = ctl.update(t, 50_000 if before.frames_per_packet > 1 else 20_000)  # fpp 1 overshoots
        if now.frames_per_packet == 1 and before.frames_per_packet > 1:
            tries.append(t)
    gaps = [b - a for a, b in zip(tries, tries[1:])]
    assert len(tries) >= 3 and all(later > earlier for earlier, later in zip(gaps, gaps[1:]))
    assert gaps[0] >= 10.0 and ctl.fpp_backoff_s <= 60.0
    # a leap that holds (through its trial at 1.5) resets the backoff
    for step in range(16):
        ctl.update(t + 100.0 + 0.5 * step, 50_000)
    assert ctl.current.frames_per_packet == 1 and ctl.fpp_backoff_s == 0.0


def test_a_leap_is_undone_at_the_first_sign_of_queueing() -> None:
    ctl = LayerController(24, overhead_bytes=OVERHEAD_WEBSOCKET, up_hold_s=1.0)
    before = ctl.update(0.0, 30_000)
    assert before.frames_per_packet == 2
    t, leap = next((t / 10, d) for t in range(1, 30) if (d := ctl.update(t / 10, 50_000)).frames_per_packet == 1)
    assert ctl.update(t + 0.1, 50_000, queue_ms=10.0) == leap  # queueing within reason: the leap stays
    assert ctl.update(t + 0.2, 50_000, queue_ms=30.0) == before  # the estimate still says go; the queue says no
    assert ctl.fpp_backoff_s >= 10.0


def test_a_leap_goes_half_a_frame_at_a_time_and_a_refused_trial_goes_back_whole() -> None:
    """2 -> 1 frames a packet is +48 % on the websocket's wire at 24 layers: it goes through a
    trial of 1.5 (+16 %) first, and a trial the path queues on returns to 2, not to 1.5."""
    ctl = LayerController(24, overhead_bytes=OVERHEAD_WEBSOCKET, up_hold_s=1.0)
    before = ctl.update(0.0, 30_000)
    packings = [before.frames_per_packet]
    for i in range(1, 60):
        d = ctl.update(i / 10, 50_000)
        if d.frames_per_packet != packings[-1]:
            packings.append(d.frames_per_packet)
    assert packings == [2, 1.5, 1]
    trial_cost = ctl.cost(24, 1.5)
    assert before.wire_bps < trial_cost < 1.2 * before.wire_bps < ctl.cost(24, 1)

    ctl = LayerController(24, overhead_bytes=OVERHEAD_WEBSOCKET, up_hold_s=1.0)
    ctl.update(0.0, 30_000)
    t, trial = next((i / 10, d) for i in range(1, 30) if (d := ctl.update(i / 10, 50_000)).trial)
    assert trial.frames_per_packet == 1.5
    assert ctl.update(t + 0.1, 50_000, queue_ms=30.0) == before
    assert ctl.fpp_backoff_s >= 10.0
    assert all(ctl.update(t + 0.2 + i / 10, 50_000).frames_per_packet == 2 for i in range(50))  # backed off


def test_packs_frames_when_one_frame_per_packet_does_not_fit() -> None:
    ctl = LayerController(24)  # WebRTC overhead: 90 bytes a packet
    fit = ctl.best_fit(24_000)
    assert fit.frames_per_packet > 1 and fit.wire_bps <= 24_000
    # the cost is what such packets really take on the wire (the encoder's bytes + the overhead)
    fpp = int(fit.frames_per_packet)
    frames = tuple(Frame(np.zeros(fit.layers, dtype=np.int64)) for _ in range(fpp))
    packet = encode_packet(MediaPacket(seq=0, timestamp=0, frames=frames), bits=10)
    assert fit.wire_bps == 8 * (90 + len(packet)) / (fpp * 0.02)


def test_below_one_layer_at_three_frames_a_packet_it_packs_up_to_six() -> None:
    """A trough's floor: one layer at the fewest frames a packet (4..6) that fits, never more
    frames a packet while more layers fit at three."""
    ctl = LayerController(24)  # WebRTC: one layer at 3 frames a packet is 14.3 kbit/s
    assert ctl.best_fit(ctl.cost(1, 3)).frames_per_packet == 3
    fits = [ctl.best_fit(b) for b in (13_000, 10_000, 8_000, 4_000)]
    assert [d.layers for d in fits] == [1, 1, 1, 1]
    assert [d.frames_per_packet for d in fits] == [4, 5, 6, 6]
    assert all(d.wire_bps <= b for d, b in zip(fits[:3], (13_000, 10_000, 8_000)))
    assert ctl.best_fit(4_000, max_fpp=1).frames_per_packet == 1  # heavy loss: one frame a packet stays
    # out of the trough a frame a packet at a time, then half a frame
    t, packings = 0.0, [ctl.update(0.0, 8_000).frames_per_packet]
    for _ in range(200):
        t += 0.1
        fpp = ctl.update(t, 40_000).frames_per_packet
        if fpp != packings[-1]:
            packings.append(fpp)
    assert packings[:5] == [6, 5, 4, 3, 2.5]


def test_more_budget_never_means_fewer_layers() -> None:
    ctl = LayerController(24)
    previous = 0
    for budget in range(14_000, 80_000, 500):
        fit = ctl.best_fit(budget)
        assert fit.layers >= previous
        previous = fit.layers


def test_the_model_s_fewest_useful_stages_are_a_floor_packing_gives_way_first() -> None:
    """4-bit stages (the default model): below a budget for 8 stages the controller packs up
    to six frames a packet and keeps 8 stages, never sends 1-7."""
    ctl = LayerController(46, bits_per_code=4, overhead_bytes=OVERHEAD_WEBRTC, min_layers=8, up_hold_s=1.0)
    plans = [ctl.update(t * 0.1, bps) for t, bps in enumerate([30_000, 12_000, 8_000, 5_000, 3_000, 8_000, 30_000] * 5)]
    assert min(p.layers for p in plans) == 8
    starved = ctl.best_fit(3_000)
    assert starved.layers == 8 and starved.frames_per_packet == FLOOR_FRAMES_PER_PACKET
    assert LayerController(46, bits_per_code=4, min_layers=8).best_fit(40_000).layers > 8
    assert LayerController(24, min_layers=1).best_fit(3_000).layers == 1  # ssc16k's floor is unchanged


def test_a_leap_that_outlives_its_trial_is_no_longer_undone_by_queueing() -> None:
    ctl = LayerController(24, overhead_bytes=OVERHEAD_WEBSOCKET, up_hold_s=1.0)
    ctl.update(0.0, 30_000)
    t = next(i / 10 for i in range(1, 30) if ctl.update(i / 10, 50_000).trial)
    assert ctl.leap_refused(t + 0.1, 30.0)
    assert not ctl.leap_refused(t + PROBE_FAIL_S + 0.1, 30.0)  # past the trial: the estimator's business


def test_a_step_up_needs_room_to_spare() -> None:
    ctl = LayerController(24, overhead_bytes=OVERHEAD_WEBSOCKET, up_hold_s=1.0)
    low = ctl.update(0.0, 20_000)
    just_more = low.wire_bps * 1.1  # the next level fits, not with 15 % to spare
    assert ctl.best_fit(just_more).layers > low.layers
    assert all(ctl.update(0.1 * i, just_more) == low for i in range(1, 30))
    assert ctl.update(3.0, low.wire_bps * 1.3) == low  # room to spare: the hold starts now
    assert ctl.update(4.1, low.wire_bps * 1.3).layers > low.layers
