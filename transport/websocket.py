"""Media and control over one websocket: binary messages are packets, text messages JSON.

Compression is off (codes do not compress and it costs latency), messages are capped at
MAX_MESSAGE_BYTES, and the write buffer is small: when the socket backs up, `send_media`
refuses the packet so the sender skips the frame instead of queueing stale audio.
"""

from __future__ import annotations

from websockets.asyncio.client import ClientConnection, connect
from websockets.asyncio.server import ServerConnection
from websockets.exceptions import ConnectionClosed

from protocol.messages import MAX_MESSAGE_BYTES as MAX_CONTROL_BYTES
from protocol.packets import MAX_PACKET_BYTES
from transport.base import TransportClosed

MAX_MESSAGE_BYTES = max(MAX_PACKET_BYTES, MAX_CONTROL_BYTES)
HIGH_WATER_BYTES = 4 * MAX_PACKET_BYTES  # above this much unsent data, media frames are skipped


class WebSocketTransport:
    def __init__(self, connection: ClientConnection | ServerConnection) -> None:
        self.connection = connection
        self.media_sent = {"websocket": 0}
        self.media_received = {"websocket": 0}

    @classmethod
    async def connect(cls, url: str, open_timeout: float = 5.0) -> "WebSocketTransport":
        try:
            connection = await connect(
                url, compression=None, max_size=MAX_MESSAGE_BYTES, open_timeout=open_timeout,
                write_limit=HIGH_WATER_BYTES, ping_interval=5, ping_timeout=10,
            )
        except (OSError, TimeoutError) as exc:
            raise TransportClosed(f"cannot connect to {url}: {exc}") from None
        return cls(connection)

    @property
    def buffered_bytes(self) -> int:
        transport = self.connection.transport
        return transport.get_write_buffer_size() if transport is not None else 0

    async def send_media(self, packet: bytes) -> bool:
        if self.buffered_bytes > HIGH_WATER_BYTES:
            return False
        try:
            await self.connection.send(packet)
        except ConnectionClosed:
            raise TransportClosed("connection closed") from None
        self.media_sent["websocket"] += 1
        return True

    async def send_control(self, message: str) -> None:
        try:
            await self.connection.send(message)
        except ConnectionClosed:
            raise TransportClosed("connection closed") from None

    async def recv(self) -> bytes | str:
        try:
            message = await self.connection.recv()
        except ConnectionClosed as exc:
            raise TransportClosed(_why(exc)) from None
        if isinstance(message, bytes):
            self.media_received["websocket"] += 1
        return message

    async def close(self, reason: str = "") -> None:
        await self.connection.close(reason=reason[:120])


def _why(exc: ConnectionClosed) -> str:
    frame = exc.rcvd or exc.sent
    if frame is not None and frame.reason:
        return frame.reason
    if frame is not None and frame.code == 1009:
        return "message too big"
    return "connection closed"
