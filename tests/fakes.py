"""In-memory stand-ins for a transport and a receiving half: session logic without a model or sockets."""

from __future__ import annotations

import asyncio
from types import SimpleNamespace

from protocol.messages import parse_message
from protocol.packets import OVERHEAD_WEBSOCKET
from protocol.telemetry import ReceiveSnapshot
from transport.base import TransportClosed

CFG = SimpleNamespace(sample_rate=16000, frame_ms=20.0, hop=320, n_quantizers=24, bits_per_code=10)


class FakeTransport:
    """`feed` what the other side says; `controls` holds what we said (parsed)."""

    overhead_bytes = OVERHEAD_WEBSOCKET

    def __init__(self) -> None:
        self.media_sent: dict[str, int] = {}
        self.media_received: dict[str, int] = {}
        self.controls: list = []
        self.media: list[bytes] = []
        self._inbox: asyncio.Queue[bytes | str | None] = asyncio.Queue()
        self.closed = False

    def feed(self, *messages: bytes | str | None) -> None:
        """None closes the link."""
        for m in messages:
            self._inbox.put_nowait(m)

    async def send_media(self, packet: bytes) -> bool:
        self.media.append(packet)
        return True

    async def send_control(self, message: str) -> None:
        if self.closed:
            raise TransportClosed("closed")
        self.controls.append(parse_message(message))

    async def recv(self) -> bytes | str:
        message = await self._inbox.get()
        if message is None:
            self.closed = True
            raise TransportClosed("closed by the test")
        return message

    @property
    def buffered_bytes(self) -> int:
        return 0

    async def close(self, reason: str = "") -> None:
        self.closed = True


class StubIncoming:
    """A receiving half that plays nothing and ends when told to (eos, bye, a closed link)."""

    def __init__(self) -> None:
        self.stats = SimpleNamespace(malformed=0, ended_by="")
        self.media = 0
        self._ended = asyncio.Event()

    def on_media(self, data: bytes, now: float) -> None:
        self.media += 1

    def on_start(self, capture_epoch: float | None) -> None:
        pass

    def end(self, why: str) -> None:
        self.stats.ended_by = self.stats.ended_by or why
        self._ended.set()

    async def play(self) -> None:
        await self._ended.wait()

    def close(self) -> None:
        pass

    def snapshot(self) -> ReceiveSnapshot:
        return ReceiveSnapshot(malformed=self.stats.malformed, frames_received=self.media, ended_by=self.stats.ended_by)
