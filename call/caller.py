"""The caller: connect to a listener's websocket, say hello, and set up the media path.

With `media="webrtc"` an offer follows the accepted hello; once the data channel opens,
media flows on it. If the callee does not do WebRTC, the description is unusable or ICE
does not connect within `open_timeout`, media stays on the websocket (the fallback the
listener applies too).

Set-up is a sequence of steps, and a failure names its step (`SetupFailed.step`): connect
(TCP, TLS, the websocket upgrade), hello (the listener's accept or reject), offer/answer (the
WebRTC description). Only connecting is retried, with backoff, until `connect_within` has
passed: nothing has been said to the listener yet. Under loss a SYN or the upgrade can be
lost, and a listener still loading its model refuses the connection; both pass on a later
try. A hello is never sent twice: the listener may have accepted the first (and be busy with
it), so a hello that gets no answer ends the set-up.
"""

from __future__ import annotations

import asyncio
import logging
import ssl
from collections.abc import Awaitable, Callable
from dataclasses import dataclass

from protocol.call_state import CallState
from protocol.messages import Accept, MediaPath
from transmitter.sender import CallRefused, Transmitter
from transport.base import WEBRTC_OPEN_TIMEOUT_S, Transport, TransportClosed
from transport.webrtc import WebRTCTransport
from transport.websocket import ConnectFailed, WebSocketTransport

log = logging.getLogger(__name__)
# How long connecting is retried (refused, reset, timed out, closed during the upgrade).
CONNECT_WITHIN_S = 15.0
CONNECT_ATTEMPT_S = 5.0  # one attempt's limit (TCP retransmits a lost SYN after 1 s, then 3 s)
BACKOFF_S = (0.25, 0.5, 1.0, 2.0)  # between attempts; the last repeats


class SetupFailed(CallRefused):
    """The call did not start: `step` says where (connect, hello, offer/answer), `reason` why.
    (A CallRefused, as every set-up failure was before steps were named.)"""

    def __init__(self, step: str, reason: str) -> None:
        super().__init__(f"{step}: {reason}")
        self.step, self.reason = step, reason


@dataclass
class Dialed:
    transport: Transport
    accept: Accept
    media_path: str  # "webrtc" or "websocket"
    state: CallState  # the call's state machine, established: `CallSession(..., state=dialed.state)` goes on with it


async def dial(
    url: str,
    transmitter: Transmitter,
    media: MediaPath = "webrtc",
    ice_servers: list[str] | None = None,
    open_timeout: float = WEBRTC_OPEN_TIMEOUT_S,
    answer_filter: Callable[[str], Awaitable[str]] | None = None,
    ssl_context: ssl.SSLContext | None = None,
    pin: str | None = None,
    connect_within: float | None = None,
) -> Dialed:
    """Raises SetupFailed (a CallRefused) naming the step that failed, with the callee's reason
    when it refused. Connecting is retried for `connect_within` seconds (default
    CONNECT_WITHIN_S). For wss://, `ssl_context` and `pin` say which certificate to trust
    (transport.tls). A data channel that does not open is no failure: media stays on the websocket."""
    signal = await connect(url, CONNECT_WITHIN_S if connect_within is None else connect_within, ssl_context, pin)
    step = "hello"
    try:
        accept = await transmitter.handshake(signal, media)
        state = transmitter.call_state
        if media != "webrtc":
            return Dialed(signal, accept, "websocket", state)
        step = "offer/answer"
        rtc = await WebRTCTransport.offer(signal, ice_servers or [], answer_filter=answer_filter)
        state.negotiated(asyncio.get_running_loop().time())  # an unusable answer too: media stays on the websocket
        if rtc is None:
            return Dialed(signal, accept, "websocket", state)
        step = "data channel"
        opened = await rtc.wait_open(open_timeout)
        return Dialed(rtc, accept, "webrtc" if opened else "websocket", state)
    except (CallRefused, TransportClosed) as exc:
        await signal.close("call set-up failed")
        raise SetupFailed(step, str(exc)) from None
    except BaseException:
        await signal.close("call set-up failed")
        raise


async def connect(url: str, within: float, ssl_context: ssl.SSLContext | None = None, pin: str | None = None) -> WebSocketTransport:
    """Open the signaling websocket, retrying what may pass on a later try until `within`
    seconds have passed (at least one attempt). Raises SetupFailed at "connect"."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + within
    attempt = 0
    while True:
        attempt += 1
        left = deadline - loop.time()
        try:
            return await WebSocketTransport.connect(url, max(0.5, min(CONNECT_ATTEMPT_S, left)), ssl_context=ssl_context, pin=pin)
        except ConnectFailed as exc:
            pause = BACKOFF_S[min(attempt, len(BACKOFF_S)) - 1]
            if not exc.retryable or loop.time() + pause >= deadline:
                tries = f" ({attempt} attempts in {within:g} s)" if attempt > 1 else ""
                raise SetupFailed("connect", f"{exc}{tries}") from None
            log.info("connect attempt %d failed (%s): retrying in %g s", attempt, exc, pause)
            await asyncio.sleep(pause)
        except TransportClosed as exc:  # the certificate does not match the pin: no retry
            raise SetupFailed("connect", str(exc)) from None
