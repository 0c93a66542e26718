"""Media counts by path: feedback travels the media path but is not counted as media."""

from __future__ import annotations

from protocol.feedback import FEEDBACK_BYTES, MAGIC
from transport.base import MediaCount


def test_feedback_and_control_are_not_media() -> None:
    count = MediaCount()
    feedback = bytes([MAGIC]) + bytes(FEEDBACK_BYTES - 1)
    media = bytes([0x10]) + bytes(9)
    for packet in (media, feedback, media):
        count.on_sent(packet)
    for message in (media, feedback, '{"type": "bye"}'):
        count.on_received(message)
    assert (count.sent, count.received) == (2, 1)
