"""Binary feedback: round trips within its resolution; anything else is a PacketError."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from protocol.feedback import FeedbackClock, FEEDBACK_BYTES, decode_feedback, encode_feedback, is_feedback
from protocol.messages import Feedback
from protocol.packets import VERSION, PacketError

feedbacks = st.builds(
    Feedback,
    highest_seq=st.integers(0, 2**32 - 1),
    received=st.integers(0, 2**32 - 1),
    loss_fraction=st.floats(0, 1),
    jitter_ms=st.floats(0, 6000),
    hold_ms=st.floats(0, 60000),
    buffer_ms=st.floats(0, 60000),
    concealed_fraction=st.floats(0, 1),
    received_bytes=st.integers(0, 2**32 - 1),
    recovered=st.integers(0, 2**32 - 1),
    queue_delay_ms=st.floats(0, 60000),
)


@settings(max_examples=2000)
@given(feedbacks)
def test_round_trip_within_resolution(fb: Feedback) -> None:
    data = encode_feedback(fb)
    assert len(data) == FEEDBACK_BYTES and is_feedback(data)
    back = decode_feedback(data)
    assert (back.highest_seq, back.received, back.received_bytes, back.recovered) == (fb.highest_seq, fb.received, fb.received_bytes, fb.recovered)
    assert abs(back.loss_fraction - fb.loss_fraction) <= 0.5 / 255 + 1e-9
    assert abs(back.jitter_ms - fb.jitter_ms) <= 0.05 + 1e-9
    assert abs(back.queue_delay_ms - min(fb.queue_delay_ms, 65535)) <= 0.5 + 1e-9


@settings(max_examples=10_000)
@given(st.binary(max_size=64))
def test_fuzzed_bytes_decode_or_raise_packet_error(data: bytes) -> None:
    try:
        decode_feedback(data)
    except PacketError:
        pass


@settings(max_examples=5000)
@given(st.binary(min_size=FEEDBACK_BYTES - 1, max_size=FEEDBACK_BYTES - 1))
def test_every_feedback_sized_packet_decodes_or_raises_packet_error(rest: bytes) -> None:
    """The real layout: 0xF1 then 27 random bytes (random bytes alone almost never reach it)."""
    try:
        fb = decode_feedback(bytes([0xF1]) + rest)
    except PacketError:
        return
    assert fb.queue_delay_ms <= 60_000 and fb.hold_ms <= 60_000 and fb.buffer_ms <= 60_000


def test_sixteen_bit_fields_above_the_model_bound_saturate() -> None:
    """The probe's packet: hold_ms = 65535 was a pydantic ValidationError, which killed the reader."""
    fb = decode_feedback(b"\xf1" + bytes(11) + b"\xff\xff" + bytes(14))
    assert fb.hold_ms == 60_000
    fb = decode_feedback(b"\xf1" + bytes(11) + b"\xff" * 16)
    assert (fb.hold_ms, fb.buffer_ms, fb.queue_delay_ms) == (60_000, 60_000, 60_000)


def test_media_packets_are_never_taken_for_feedback() -> None:
    assert not is_feedback(bytes([VERSION << 4 | 0xF]) + bytes(27))
    with pytest.raises(PacketError):
        decode_feedback(bytes([0xF1]) + bytes(10))


def test_feedback_clock_reports_every_interval_and_early_on_a_queue() -> None:
    clock = FeedbackClock(interval_s=0.1, early_queue_ms=100.0, min_gap_s=0.03)
    clock.start(0.0)
    sent = []

    def tick(now: float, queue_ms: float) -> None:
        if clock.due(now, queue_ms):
            clock.sent(now, queue_ms)
            sent.append(round(now, 3))

    for step in range(1, 16):  # 20 ms ticks, no queue: one report per 100 ms
        tick(0.02 * step, 10.0)
    assert sent == [0.1, 0.2, 0.3]
    tick(0.32, 150.0)  # the queue crosses 100 ms, but 20 ms after a report: wait
    tick(0.34, 200.0)  # now: not at 0.4
    tick(0.36, 300.0)  # still above: no second early report for the same crossing
    tick(0.38, 400.0)
    assert sent == [0.1, 0.2, 0.3, 0.34] and clock.early_reports == 1
    tick(0.44, 400.0)  # the regular schedule goes on from the early report
    assert sent[-1] == 0.44


def test_feedback_clock_early_reports_keep_a_minimum_gap() -> None:
    clock = FeedbackClock(interval_s=0.1, early_queue_ms=100.0, min_gap_s=0.03)
    clock.start(0.0)
    assert clock.due(0.1, 0.0)
    clock.sent(0.1, 0.0)
    assert not clock.due(0.11, 500.0)  # too soon after the last report
    assert clock.due(0.13, 500.0)


def test_feedback_clock_reports_early_at_a_shallower_queue_while_a_leap_is_on_trial() -> None:
    """Within 2 s of packets turning denser (the sender tries fewer frames a packet), a queue
    of 25 ms, the level at which the sender undoes the leap, is reported at once."""
    clock = FeedbackClock(interval_s=0.1, early_queue_ms=100.0, min_gap_s=0.03, leap_queue_ms=25.0, leap_watch_s=2.0)
    clock.start(0.0)
    clock.on_packing(0.0, 2)
    assert clock.due(0.1, 0.0)
    clock.sent(0.1, 0.0)
    assert not clock.due(0.15, 30.0)  # no leap: 30 ms of queue waits for the tick
    clock.on_packing(0.16, 1)  # 2 -> 1 frames a packet
    assert clock.due(0.16, 30.0)
    clock.sent(0.16, 30.0)
    assert not clock.due(0.2, 40.0)  # one report per crossing
    assert clock.due(0.26, 40.0)  # the tick
    clock.sent(0.26, 40.0)
    assert clock.due(0.3, 120.0)  # the 100 ms crossing still counts during the watch
    clock.sent(0.3, 120.0)
    clock.sent(2.4, 0.0)
    assert not clock.due(2.45, 30.0)  # the watch is over: back to 100 ms
    clock.on_packing(2.46, 1)  # as dense as before: no new leap
    assert not clock.due(2.47, 30.0)
