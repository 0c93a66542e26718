"""Receiver feedback as a 28-byte binary packet that travels the media path, and when to send it.

Feedback goes out every 100 ms, and early (`FeedbackClock`) when the queueing delay first
climbs past `EARLY_QUEUE_MS`, as RTCP's early feedback does for events that cannot wait, or
past `LEAP_QUEUE_MS` within `LEAP_WATCH_S` of the sender's packing turning denser (a leap to
fewer frames a packet, which the sender undoes at that queue: protocol/ratecontrol/layers.py).
It is binary because as JSON a report every 100 ms would choke the return direction of a
capped link (docs/protocol.md). It also travels the media path (the WebRTC data channel when
open), so the RTT it gives is the media path's RTT.

The first byte is 0xF1. Media packets start with their version in the high 4 bits (1), so
the two kinds cannot be mistaken for each other. Layout, big-endian:

    u8 0xF1 | u32 highest_seq | u32 received | u8 loss (x255) | u16 jitter (0.1 ms)
    | u16 hold_ms | u16 buffer_ms | u16 concealed (x65535) | u32 received_bytes
    | u32 recovered | u16 queue_delay_ms

Values beyond a field's range saturate, on both sides: the millisecond fields decode to at most
`MAX_MS` (60 s, the bound the `Feedback` model sets), so that any 28 bytes starting with 0xF1
decode, and anything else raises `PacketError` (never another exception: a reader that met
one would stop reading the call).
"""

from __future__ import annotations

import math
import struct

from pydantic import ValidationError

from protocol.messages import Feedback
from protocol.packets import PacketError

MAGIC = 0xF1
_LAYOUT = struct.Struct(">BIIBHHHHIIH")
FEEDBACK_BYTES = _LAYOUT.size
MAX_MS = 60_000  # Feedback's bound on jitter_ms, hold_ms, buffer_ms and queue_delay_ms


def is_feedback(data: bytes) -> bool:
    return len(data) > 0 and data[0] == MAGIC


def _u(value: float, top: int) -> int:
    return max(0, min(top, int(round(value))))


def encode_feedback(fb: Feedback) -> bytes:
    return _LAYOUT.pack(
        MAGIC,
        _u(fb.highest_seq, 0xFFFFFFFF),
        _u(fb.received, 0xFFFFFFFF),
        _u(fb.loss_fraction * 255, 255),
        _u(fb.jitter_ms * 10, 0xFFFF),
        _u(fb.hold_ms, MAX_MS),
        _u(fb.buffer_ms, MAX_MS),
        _u(fb.concealed_fraction * 65535, 0xFFFF),
        _u(fb.received_bytes, 0xFFFFFFFF),
        _u(fb.recovered, 0xFFFFFFFF),
        _u(fb.queue_delay_ms, MAX_MS),
    )


def decode_feedback(data: bytes) -> Feedback:
    if len(data) != FEEDBACK_BYTES or data[0] != MAGIC:
        raise PacketError(f"a feedback packet is {FEEDBACK_BYTES} bytes starting with 0x{MAGIC:02X}")
    _, seq, received, loss, jitter, hold, buffer, concealed, nbytes, recovered, queue = _LAYOUT.unpack(data)
    try:
        return Feedback(
            highest_seq=seq,
            received=received,
            loss_fraction=loss / 255,
            jitter_ms=jitter / 10,
            hold_ms=min(hold, MAX_MS),
            buffer_ms=min(buffer, MAX_MS),
            concealed_fraction=concealed / 65535,
            received_bytes=nbytes,
            recovered=recovered,
            queue_delay_ms=min(queue, MAX_MS),
        )
    except ValidationError as exc:  # cannot happen for the fields above; a model change must not make it escape
        raise PacketError(f"feedback out of range: {exc.errors()[0].get('msg', 'invalid')}") from None


FEEDBACK_INTERVAL_S = 0.1
# A queue this deep is a capacity drop, not jitter; after a drop the queue grows faster than
# time passes, so every moment the report waits adds more than that to drain.
EARLY_QUEUE_MS = 100.0
EARLY_MIN_GAP_S = 0.03
# A leap to fewer frames a packet raises the wire rate at once; behind a cap the sender undoes
# it at this queue (protocol.ratecontrol.PROBE_ABORT_MS), reported as it crosses rather than at
# the next periodic report, by when the queue it left is deep (docs/protocol.md, "Feedback").
LEAP_QUEUE_MS = 25.0
LEAP_WATCH_S = 2.0
_SLACK_S = 0.001  # a tick a hair early counts as on time (the caller wakes at 20 ms steps)


class FeedbackClock:
    """When the receiver reports (sans-I/O): every `interval_s`, and at once when the
    queueing delay crosses `early_queue_ms` upward since the last report, or `leap_queue_ms`
    within `leap_watch_s` of a packet carrying fewer frames than the one before (`on_packing`)
    (at most one such report per crossing, none within `min_gap_s` of the last report)."""

    def __init__(
        self,
        interval_s: float = FEEDBACK_INTERVAL_S,
        early_queue_ms: float = EARLY_QUEUE_MS,
        min_gap_s: float = EARLY_MIN_GAP_S,
        leap_queue_ms: float = LEAP_QUEUE_MS,
        leap_watch_s: float = LEAP_WATCH_S,
    ) -> None:
        self.interval_s = interval_s
        self.early_queue_ms = early_queue_ms
        self.min_gap_s = min_gap_s
        self.leap_queue_ms = leap_queue_ms
        self.leap_watch_s = leap_watch_s
        self._last: float | None = None
        self._last_queue_ms = 0.0
        self._packing: int | None = None  # frames in the last packet
        self._leap_at = -math.inf  # when the packing last turned denser
        self.early_reports = 0

    def on_packing(self, now: float, frames: int) -> None:
        """A media packet of `frames` frames arrived."""
        if self._packing is not None and frames < self._packing:
            self._leap_at = now
        self._packing = frames

    def start(self, now: float) -> None:
        self._last = now

    def due(self, now: float, queue_delay_ms: float) -> bool:
        if self._last is None or now - self._last >= self.interval_s - _SLACK_S:
            return True
        if now - self._last < self.min_gap_s:
            return False

        def crossed(threshold: float) -> bool:
            return self._last_queue_ms < threshold <= queue_delay_ms

        return crossed(self.early_queue_ms) or (now - self._leap_at <= self.leap_watch_s and crossed(self.leap_queue_ms))

    def sent(self, now: float, queue_delay_ms: float) -> None:
        if self._last is not None and now - self._last < self.interval_s - _SLACK_S:
            self.early_reports += 1
        self._last = now
        self._last_queue_ms = queue_delay_ms
