"""Media and control over one websocket: binary messages are packets, text messages JSON.

Compression is off (codes do not compress and it costs latency), messages are capped at
MAX_MESSAGE_BYTES, and the write buffer is small: when the socket backs up, `send_media`
refuses the packet so the sender skips the frame instead of queueing stale audio.
"""

from __future__ import annotations

import fcntl
import logging
import socket
import ssl
import struct
from typing import Any

from websockets.asyncio.client import ClientConnection, connect
from websockets.asyncio.server import ServerConnection
from websockets.client import process_exception
from websockets.exceptions import ConnectionClosed, InvalidHandshake

from protocol.messages import MAX_MESSAGE_BYTES as MAX_CONTROL_BYTES
from protocol.packets import MAX_PACKET_BYTES, OVERHEAD_WEBSOCKET
from transport.base import KEEPALIVE_INTERVAL_S, KEEPALIVE_TIMEOUT_S, MediaCount, TransportClosed
from transport.tls import check_pin

log = logging.getLogger(__name__)
MAX_MESSAGE_BYTES = max(MAX_PACKET_BYTES, MAX_CONTROL_BYTES)
HIGH_WATER_BYTES = 4 * MAX_PACKET_BYTES  # above this much unsent data, media frames are skipped


class ConnectFailed(TransportClosed):
    """The websocket did not open; `retryable`: a new attempt may succeed (nothing was sent)."""

    def __init__(self, message: str, retryable: bool) -> None:
        super().__init__(message)
        self.retryable = retryable


class WebSocketTransport:
    overhead_bytes = OVERHEAD_WEBSOCKET  # per media message on the wire: TCP/IP headers + websocket framing
    # TCP loses nothing: what a capacity drop queues stays queued until the sender sends less
    # than the path carries, so the rate policy drains such a queue (protocol/ratecontrol/draining.py).
    drain_above_ms: float | None = 60.0

    def __init__(self, connection: ClientConnection | ServerConnection) -> None:
        self.connection = connection
        _limit_unsent(connection)
        self.counts = MediaCount()

    @property
    def media_sent(self) -> dict[str, int]:
        return {"websocket": self.counts.sent}

    @property
    def media_received(self) -> dict[str, int]:
        return {"websocket": self.counts.received}

    @classmethod
    async def connect(cls, url: str, open_timeout: float = 5.0, ssl_context: ssl.SSLContext | None = None, pin: str | None = None) -> "WebSocketTransport":
        """`ssl_context` for wss:// (transport.tls.client_context); `pin`: the SHA-256
        fingerprint the listener's certificate must have, checked before anything is sent."""
        extra: dict[str, Any] = {"ssl": ssl_context} if ssl_context is not None and url.startswith("wss:") else {}
        try:
            connection = await connect(
                url,
                compression=None,
                max_size=MAX_MESSAGE_BYTES,
                open_timeout=open_timeout,
                write_limit=HIGH_WATER_BYTES,
                ping_interval=KEEPALIVE_INTERVAL_S,
                ping_timeout=KEEPALIVE_TIMEOUT_S,
                **extra,
            )
        except (OSError, TimeoutError, InvalidHandshake) as exc:
            # websockets' own rule says what may pass on a second try (refused, reset, timed
            # out, a connection closed during the upgrade, a 5xx); a certificate that fails
            # verification or a name that does not resolve will fail the same way again.
            retryable = process_exception(exc) is None and not isinstance(exc, (ssl.SSLError, ssl.CertificateError, socket.gaierror))
            raise ConnectFailed(f"cannot connect to {url}: {_describe(exc)}", retryable) from None
        if pin is not None:
            try:
                check_pin(connection.transport.get_extra_info("ssl_object") if connection.transport else None, pin)
            except TransportClosed:
                await connection.close()
                raise
        return cls(connection)

    @property
    def buffered_bytes(self) -> int:
        """Bytes written but not yet sent: asyncio's buffer and the kernel's unsent queue."""
        transport = self.connection.transport
        if transport is None:
            return 0
        return transport.get_write_buffer_size() + _kernel_unsent(transport.get_extra_info("socket"))

    async def send_media(self, packet: bytes) -> bool:
        if self.buffered_bytes > HIGH_WATER_BYTES:
            return False
        try:
            await self.connection.send(packet)
        except ConnectionClosed:
            raise TransportClosed("connection closed") from None
        self.counts.on_sent(packet)
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
        self.counts.on_received(message)
        return message

    async def close(self, reason: str = "") -> None:
        try:
            await self.connection.close(reason=reason[:120])
        except Exception as exc:  # noqa: BLE001 - best effort: the link may be half torn down already
            log.debug("closing the websocket: %r", exc)


TCP_NOTSENT_LOWAT = getattr(socket, "TCP_NOTSENT_LOWAT", 25)  # Linux
UNSENT_LIMIT_BYTES = 512


def _limit_unsent(connection: ClientConnection | ServerConnection) -> None:
    """Keep at most UNSENT_LIMIT_BYTES of not-yet-sent data in the kernel: the rest waits in
    asyncio's buffer, where `buffered_bytes` sees it and the sender skips frames, instead of
    queueing seconds of stale audio in the socket at voice bitrates."""
    sock = connection.transport.get_extra_info("socket") if connection.transport is not None else None
    if sock is None or sock.family not in (socket.AF_INET, socket.AF_INET6):
        return
    try:
        sock.setsockopt(socket.IPPROTO_TCP, TCP_NOTSENT_LOWAT, UNSENT_LIMIT_BYTES)
    except OSError:
        pass  # not Linux: the kernel's default buffering applies


SIOCOUTQNSD = 0x894B  # Linux: bytes in a TCP socket's send queue not yet sent


def _kernel_unsent(sock: socket.socket | None) -> int:
    if sock is None or sock.family not in (socket.AF_INET, socket.AF_INET6):
        return 0
    try:
        return struct.unpack("i", fcntl.ioctl(sock.fileno(), SIOCOUTQNSD, b"\0\0\0\0"))[0]
    except (OSError, ValueError):  # ValueError: the socket is closed (fileno -1)
        return 0  # not Linux, or the socket is gone


def _why(exc: ConnectionClosed) -> str:
    frame = exc.rcvd or exc.sent
    if frame is not None and frame.reason:
        return frame.reason
    if frame is not None and frame.code == 1009:
        return "message too big"
    return "connection closed"


def _describe(exc: BaseException) -> str:
    if isinstance(exc, TimeoutError):
        return "timed out during the opening handshake"
    return str(exc) or type(exc).__name__
