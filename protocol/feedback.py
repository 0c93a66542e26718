"""Receiver feedback as a 28-byte binary packet that travels the media path.

Feedback goes out every 100 ms. As JSON it takes about 330 bytes, which is 26 kbit/s: more
than a 16 kbit/s link carries, and enough to choke the return direction of a capped link. In
binary it is 28 bytes (2.2 kbit/s). It also travels the media path (the WebRTC data channel
when open), so the RTT it gives is the media path's RTT.

The first byte is 0xF1. Media packets start with their version in the high 4 bits (1), so
the two kinds cannot be mistaken for each other. Layout, big-endian:

    u8 0xF1 | u32 highest_seq | u32 received | u8 loss (x255) | u16 jitter (0.1 ms)
    | u16 hold_ms | u16 buffer_ms | u16 concealed (x65535) | u32 received_bytes
    | u32 recovered | u16 queue_delay_ms

Values beyond a field's range saturate.
"""

from __future__ import annotations

import struct

from protocol.messages import Feedback
from protocol.packets import PacketError

MAGIC = 0xF1
_LAYOUT = struct.Struct(">BIIBHHHHIIH")
FEEDBACK_BYTES = _LAYOUT.size


def is_feedback(data: bytes) -> bool:
    return len(data) > 0 and data[0] == MAGIC


def _u(value: float, top: int) -> int:
    return max(0, min(top, int(round(value))))


def encode_feedback(fb: Feedback) -> bytes:
    return _LAYOUT.pack(
        MAGIC, _u(fb.highest_seq, 0xFFFFFFFF), _u(fb.received, 0xFFFFFFFF), _u(fb.loss_fraction * 255, 255),
        _u(fb.jitter_ms * 10, 0xFFFF), _u(fb.hold_ms, 0xFFFF), _u(fb.buffer_ms, 0xFFFF), _u(fb.concealed_fraction * 65535, 0xFFFF),
        _u(fb.received_bytes, 0xFFFFFFFF), _u(fb.recovered, 0xFFFFFFFF), _u(fb.queue_delay_ms, 0xFFFF),
    )


def decode_feedback(data: bytes) -> Feedback:
    if len(data) != FEEDBACK_BYTES or data[0] != MAGIC:
        raise PacketError(f"a feedback packet is {FEEDBACK_BYTES} bytes starting with 0x{MAGIC:02X}")
    _, seq, received, loss, jitter, hold, buffer, concealed, nbytes, recovered, queue = _LAYOUT.unpack(data)
    return Feedback(
        highest_seq=seq, received=received, loss_fraction=loss / 255, jitter_ms=jitter / 10, hold_ms=hold,
        buffer_ms=buffer, concealed_fraction=concealed / 65535, received_bytes=nbytes, recovered=recovered, queue_delay_ms=queue,
    )
