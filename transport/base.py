"""What a call needs from a transport, whichever carries it (websocket, WebRTC data channel)."""

from __future__ import annotations

from typing import Protocol

from protocol.feedback import is_feedback

# How long a WebRTC data channel may take to open before media stays on the websocket.
WEBRTC_OPEN_TIMEOUT_S = 5.0
# Websocket keepalive (both ends): a ping every KEEPALIVE_INTERVAL_S, the link declared dead
# when its pong has not come within KEEPALIVE_TIMEOUT_S (websockets' defaults). Every 5 s, as
# before, each ping and its pong (~100 wire bytes) queued 30 ms behind a 24 kbit/s cap that
# the media filled to 95 %, and a frame was concealed at every second one; feedback every
# 100 ms already tells either side that media flows.
KEEPALIVE_INTERVAL_S = 20.0
KEEPALIVE_TIMEOUT_S = 20.0


class TransportClosed(Exception):
    """The other side went away or the link broke."""


class MediaCount:
    """Media packets that one path carried each way. Feedback travels the media path too but
    is not media: this is the one place where the two are told apart for the counts."""

    def __init__(self) -> None:
        self.sent = 0
        self.received = 0

    def on_sent(self, packet: bytes) -> None:
        self.sent += not is_feedback(packet)

    def on_received(self, message: bytes | str) -> None:
        self.received += isinstance(message, bytes) and not is_feedback(message)


class Transport(Protocol):
    @property
    def media_sent(self) -> dict[str, int]:
        """Media packets sent, by path ("websocket", "webrtc")."""

    @property
    def media_received(self) -> dict[str, int]:
        """Media packets received, by path."""

    @property
    def overhead_bytes(self) -> int:
        """What the network adds to each media packet on the wire now (`protocol.packets.OVERHEAD_*`)."""

    async def send_media(self, packet: bytes) -> bool:
        """Send one media packet unless the link is backed up; returns whether it was sent."""

    async def send_control(self, message: str) -> None:
        """Send one control message (JSON text); these are never skipped."""

    async def recv(self) -> bytes | str:
        """The next media packet (bytes) or control message (str); raises TransportClosed."""

    @property
    def buffered_bytes(self) -> int:
        """Bytes queued locally and not yet handed to the network."""

    @property
    def drain_above_ms(self) -> float | None:
        """Queueing delay above which the sender drains a queue its own excess left; None: never.
        (Optional: the sender assumes None where a transport lacks it.)"""

    async def close(self, reason: str = "") -> None:
        """Close the link (idempotent)."""
