"""Binary feedback: round trips within its resolution; anything else is a PacketError."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from protocol.feedback import FEEDBACK_BYTES, decode_feedback, encode_feedback, is_feedback
from protocol.messages import Feedback
from protocol.packets import VERSION, PacketError

feedbacks = st.builds(
    Feedback,
    highest_seq=st.integers(0, 2**32 - 1), received=st.integers(0, 2**32 - 1), loss_fraction=st.floats(0, 1),
    jitter_ms=st.floats(0, 6000), hold_ms=st.floats(0, 60000), buffer_ms=st.floats(0, 60000),
    concealed_fraction=st.floats(0, 1), received_bytes=st.integers(0, 2**32 - 1), recovered=st.integers(0, 2**32 - 1),
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


def test_media_packets_are_never_taken_for_feedback() -> None:
    assert not is_feedback(bytes([VERSION << 4 | 0xF]) + bytes(27))
    with pytest.raises(PacketError):
        decode_feedback(bytes([0xF1]) + bytes(10))
