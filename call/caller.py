"""The caller: connect to a listener's websocket, say hello, and set up the media path.

With `media="webrtc"` an offer follows the accepted hello; once the data channel opens,
media flows on it. If the callee does not do WebRTC, the description is unusable or ICE
does not connect within `open_timeout`, media stays on the websocket (the fallback the
listener applies too).
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass

from protocol.messages import Accept
from transmitter.sender import Transmitter
from transport.base import WEBRTC_OPEN_TIMEOUT_S, Transport
from transport.webrtc import WebRTCTransport
from transport.websocket import WebSocketTransport


@dataclass
class Dialed:
    transport: Transport
    accept: Accept
    media_path: str  # "webrtc" or "websocket"


async def dial(
    url: str, transmitter: Transmitter, media: str = "webrtc", ice_servers: list[str] | None = None, open_timeout: float = WEBRTC_OPEN_TIMEOUT_S,
    answer_filter: Callable[[str], Awaitable[str]] | None = None,
) -> Dialed:
    """Raises CallRefused (with the callee's reason) or TransportClosed."""
    signal = await WebSocketTransport.connect(url)
    try:
        accept = await transmitter.handshake(signal, media)
        if media != "webrtc":
            return Dialed(signal, accept, "websocket")
        rtc = await WebRTCTransport.offer(signal, ice_servers or [], answer_filter=answer_filter)
        if rtc is None:
            return Dialed(signal, accept, "websocket")
        opened = await rtc.wait_open(open_timeout)
        return Dialed(rtc, accept, "webrtc" if opened else "websocket")
    except BaseException:
        await signal.close("call set-up failed")
        raise
