"""Media over a WebRTC data channel (aiortc); control over the signaling websocket.

The channel is unordered with no retransmissions (a late voice frame is a useless one) and
negotiated out of band with a fixed id on both sides, so there is no open handshake to lose.
Packets stay within one SCTP chunk (`MAX_PACKET_BYTES`, 1100 B). aiortc never expires queued
messages, so `send_media` watches `bufferedAmount` and refuses a packet (the sender skips the
frame) once more than a few packets wait.

Control messages (start, feedback, eos, bye) stay on the websocket: it is reliable, and
the callee already listens on it. Media prefers the data channel while it is open and falls
back to the websocket when ICE fails, the channel closes or WebRTC is off; the receiving
side takes media from either path, so the two ends need not agree on the switch.

No STUN server is configured by default: on a LAN or loopback the host candidates connect,
and the call works offline. `ice_servers` takes STUN/TURN URLs for other networks. aiortc
reports no statistics for a data-channel-only connection: RTT, loss and jitter come from our
own packets and feedback.
"""

from __future__ import annotations

import asyncio
import logging
import random
from collections.abc import Awaitable, Callable, Sequence

from aiortc import RTCConfiguration, RTCDataChannel, RTCIceServer, RTCPeerConnection, RTCSessionDescription

from protocol.messages import Answer, MessageError, Offer, dump_message, parse_message
from protocol.packets import MAX_PACKET_BYTES, OVERHEAD_WEBRTC
from transport.base import WEBRTC_OPEN_TIMEOUT_S, MediaCount, TransportClosed
from transport.websocket import WebSocketTransport

log = logging.getLogger(__name__)
CHANNEL_ID = 0
HIGH_WATER_BYTES = 4 * MAX_PACKET_BYTES  # queued in aiortc's SCTP layer: beyond this, skip frames
_CLOSED = object()


class WebRTCTransport:
    def __init__(self, signal: WebSocketTransport, pc: RTCPeerConnection, channel: RTCDataChannel) -> None:
        self.signal = signal
        self.pc = pc
        self.channel = channel
        self.channel_counts = MediaCount()  # the websocket path's are the signal's own
        self.dropped_datagrams = 0  # by `inject_loss`
        self._queue: asyncio.Queue[bytes | str | object] = asyncio.Queue()
        self._closed_reason = ""
        channel.on("message", self._on_channel_message)
        self._pump = asyncio.create_task(self._pump_signal())

    # ---- set-up ----------------------------------------------------------------------------------
    @staticmethod
    def _peer(ice_servers: list[str]) -> tuple[RTCPeerConnection, RTCDataChannel]:
        pc = RTCPeerConnection(RTCConfiguration(iceServers=[RTCIceServer(urls=url) for url in ice_servers]))
        channel = pc.createDataChannel("media", ordered=False, maxRetransmits=0, negotiated=True, id=CHANNEL_ID)
        return pc, channel

    @classmethod
    async def offer(
        cls, signal: WebSocketTransport, ice_servers: Sequence[str] = (), timeout: float = 10.0, answer_filter: Callable[[str], Awaitable[str]] | None = None
    ) -> "WebRTCTransport | None":
        """Caller: send an offer on the signaling websocket and take the answer.

        Returns None when the callee does not do WebRTC (media stays on the websocket).
        Raises TransportClosed when the signaling link fails. `answer_filter` may rewrite
        the answer's description (experiments point its candidate at an impairment relay)."""
        pc, channel = cls._peer(list(ice_servers))
        try:
            await pc.setLocalDescription(await pc.createOffer())
            await signal.send_control(dump_message(Offer(sdp=pc.localDescription.sdp)))
            try:
                reply = await asyncio.wait_for(signal.recv(), timeout)
            except TimeoutError:
                raise TransportClosed("no answer to the WebRTC offer") from None
            try:
                answer = parse_message(reply) if isinstance(reply, str) else None
            except MessageError:
                answer = None
            if not isinstance(answer, Answer):
                raise TransportClosed("expected an answer to the WebRTC offer")
            if not answer.sdp:
                await pc.close()
                return None
            sdp = answer.sdp if answer_filter is None else await answer_filter(answer.sdp)
            await pc.setRemoteDescription(RTCSessionDescription(sdp, "answer"))
        except TransportClosed:
            await pc.close()
            raise
        except Exception as exc:  # aiortc raises several types on a bad description
            log.warning("WebRTC set-up failed, media stays on the websocket: %s", exc)
            await pc.close()
            return None
        return cls(signal, pc, channel)

    @classmethod
    async def answer(cls, signal: WebSocketTransport, offer: Offer, ice_servers: Sequence[str] = ()) -> "WebRTCTransport | None":
        """Callee: answer an offer (an empty answer if it cannot be used: websocket fallback)."""
        pc, channel = cls._peer(list(ice_servers))
        try:
            await pc.setRemoteDescription(RTCSessionDescription(offer.sdp, "offer"))
            await pc.setLocalDescription(await pc.createAnswer())
        except Exception as exc:  # a malformed or hostile offer
            log.warning("unusable WebRTC offer, media stays on the websocket: %s", exc)
            await pc.close()
            await signal.send_control(dump_message(Answer(sdp="")))
            return None
        await signal.send_control(dump_message(Answer(sdp=pc.localDescription.sdp)))
        return cls(signal, pc, channel)

    async def wait_open(self, timeout: float = WEBRTC_OPEN_TIMEOUT_S) -> bool:
        """Wait for the data channel (ICE + DTLS + SCTP); False: media stays on the websocket.

        Gives up early when the signaling websocket closes (the other side is gone)."""
        if self.channel.readyState == "open":
            return True
        opened = asyncio.Event()
        self.channel.on("open", opened.set)
        waiter = asyncio.create_task(opened.wait())
        done, _ = await asyncio.wait({waiter, self._pump}, timeout=timeout, return_when=asyncio.FIRST_COMPLETED)
        waiter.cancel()
        if waiter in done:
            return True
        if self._pump not in done:
            log.warning("the WebRTC data channel did not open within %.0f s: media uses the websocket", timeout)
        return False

    # ---- Transport -------------------------------------------------------------------------------
    @property
    def media_path(self) -> str:
        return "webrtc" if self.channel.readyState == "open" else "websocket"

    @property
    def media_sent(self) -> dict[str, int]:
        return {"webrtc": self.channel_counts.sent, "websocket": self.signal.counts.sent}

    @property
    def media_received(self) -> dict[str, int]:
        return {"webrtc": self.channel_counts.received, "websocket": self.signal.counts.received}

    @property
    def overhead_bytes(self) -> int:
        """Per media packet on the wire: IP/UDP/DTLS/SCTP on the data channel, TCP/IP + framing on the websocket."""
        return OVERHEAD_WEBRTC if self.media_path == "webrtc" else self.signal.overhead_bytes

    @property
    def drain_above_ms(self) -> float | None:
        """No draining on the data channel (unreliable, unordered: a drop-tail bottleneck bounds
        the queue); the websocket's setting when media falls back to it."""
        return None if self.media_path == "webrtc" else self.signal.drain_above_ms

    @property
    def buffered_bytes(self) -> int:
        return self.channel.bufferedAmount + self.signal.buffered_bytes

    async def send_media(self, packet: bytes) -> bool:
        if self.channel.readyState != "open":
            return await self.signal.send_media(packet)
        if self.channel.bufferedAmount > HIGH_WATER_BYTES:
            return False
        self.channel.send(packet)
        self.channel_counts.on_sent(packet)
        return True

    async def send_control(self, message: str) -> None:
        await self.signal.send_control(message)

    async def recv(self) -> bytes | str:
        item = await self._queue.get()
        if item is _CLOSED:
            self._queue.put_nowait(_CLOSED)  # every later recv fails too
            raise TransportClosed(self._closed_reason)
        return item  # type: ignore[return-value]

    async def close(self, reason: str = "") -> None:
        self._pump.cancel()
        await self.pc.close()
        await self.signal.close(reason)

    # ---- internals -------------------------------------------------------------------------------
    def _on_channel_message(self, message: bytes | str) -> None:
        if isinstance(message, bytes):  # media and binary feedback only: control travels on the websocket
            self.channel_counts.on_received(message)
            self._queue.put_nowait(message)

    async def _pump_signal(self) -> None:
        while True:
            try:
                message = await self.signal.recv()
            except TransportClosed as exc:
                self._closed_reason = str(exc)
                self._queue.put_nowait(_CLOSED)
                return
            self._queue.put_nowait(message)

    def inject_loss(self, fraction: float, seed: int = 0) -> None:
        """Drop this fraction of outgoing UDP datagrams below aiortc (after DTLS), for tests
        and experiments: SCTP, DTLS and our media see a lossy network."""
        sctp = self.pc.sctp
        assert sctp is not None  # the data channel's transport exists once connected
        ice = sctp.transport.transport
        send = ice._send
        rng = random.Random(seed)

        async def lossy_send(data: bytes) -> None:
            if rng.random() < fraction:
                self.dropped_datagrams += 1
                return
            await send(data)

        ice._send = lossy_send
