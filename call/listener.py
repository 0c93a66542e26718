"""The callee: a websocket server that takes one call at a time, then the next.

Per connection: the first message must be a hello (within 5 s); `protocol.session` decides
accept or reject (wrong token, protocol version, codec model: the reason goes to both
sides), and the call's state machine (`protocol.call_state`, fed by `protocol.router`) what
may come when; this module moves the bytes. A caller that asked for WebRTC then sends an
offer, answered on the same websocket; media flows on the data channel once it opens, on the
websocket otherwise. The call itself
is a `CallSession`: incoming only (`python -m receiver`) or both ways (`ssvoip listen`, when
a source factory is given). A caller that vanishes or misbehaves at any point costs only its
own connection.
"""

from __future__ import annotations

import asyncio
import logging
import ssl
from pathlib import Path
from typing import Callable

from websockets.asyncio.server import Server, ServerConnection, serve

from call.options import append_json_line
from call.session import CallSession
from call.web import WebPage
from codec.engine import DEFAULT_ENGINE
from codec.weights import AnyCodec
from protocol.call_state import CallEnded, CallState, Decision, HelloIn, OfferIn, Role, Say
from protocol.messages import Answer, Hello, Reject, dump_message
from protocol.router import route
from protocol.session import FailedHelloLimit, answer_hello
from protocol.telemetry import CallSummary
from receiver.concealment import DEFAULT_CONCEALMENT
from receiver.incoming import IncomingStream
from receiver.sinks import Sink
from transmitter.sender import Transmitter
from transmitter.sources import FrameSource
from transport.base import KEEPALIVE_INTERVAL_S, KEEPALIVE_TIMEOUT_S, Transport, TransportClosed
from transport.webrtc import WebRTCTransport
from transport.websocket import MAX_MESSAGE_BYTES, WebSocketTransport

log = logging.getLogger(__name__)
HANDSHAKE_TIMEOUT_S = 5.0
# The offer follows our accept: the caller builds it (ICE gathering) on a machine that may be
# loaded, and sends it over a path that may be lossy; it waits as long for our answer.
OFFER_TIMEOUT_S = 10.0
# A call in which no media has come for this long ends (the caller's keepalive alone does not
# hold the listener: an authenticated caller that sends nothing kept it busy for good).
IDLE_TIMEOUT_S = 15.0


class Listener:
    def __init__(
        self,
        model: AnyCodec,
        model_id: str,
        sink_factory: Callable[[], Sink],
        token: str = "",
        stats_json: Path | None = None,
        source_factory: Callable[[], FrameSource] | None = None,
        layers: int | None = None,
        engine: str = DEFAULT_ENGINE,
        webrtc: bool = True,
        ice_servers: list[str] | None = None,
        on_session: Callable[[CallSession | None], None] | None = None,
        adapt: bool = False,
        protect: bool = False,
        idle_timeout_s: float | None = IDLE_TIMEOUT_S,
        concealment: str = DEFAULT_CONCEALMENT,
        web: WebPage | None = None,
    ) -> None:
        self.web = web  # call.web: the browser page, served on the same port (`listen --web`)
        self.concealment = concealment  # receiver.concealment: repeat | neural
        self.model = model
        self.model_id = model_id
        self.sink_factory = sink_factory
        self.source_factory = source_factory
        self.token = token
        self.stats_json = stats_json
        self.layers = layers if layers is not None else model.cfg.n_quantizers
        self.engine = engine
        self.webrtc = webrtc
        self.ice_servers = ice_servers or []
        self.on_session = on_session  # told when a call starts (the session) and ends (None)
        self.adapt, self.protect = adapt, protect  # our outgoing half's rate control
        self.idle_timeout_s = idle_timeout_s
        self.failed_hellos = FailedHelloLimit()  # per caller address: no guessing the token at socket speed
        self.calls: list[CallSummary] = []
        self.rejected: list[str] = []
        self.call_ended = asyncio.Event()
        self.session: CallSession | None = None
        self._busy = asyncio.Lock()

    async def serve(self, host: str, port: int, ssl_context: ssl.SSLContext | None = None) -> Server:
        """`ssl_context` (transport.tls.server_context): wss://, the token and the SDP fingerprints kept from the path."""
        return await serve(
            self._handle,
            host,
            port,
            compression=None,
            max_size=MAX_MESSAGE_BYTES,
            ping_interval=KEEPALIVE_INTERVAL_S,
            ping_timeout=KEEPALIVE_TIMEOUT_S,
            ssl=ssl_context,
            process_request=self.web.respond if self.web is not None else None,
        )

    async def _handle(self, connection: ServerConnection) -> None:
        signal = WebSocketTransport(connection)
        try:
            await self._call(signal)
        except (TransportClosed, TimeoutError) as exc:
            log.info("caller went away: %s", exc)
        finally:
            await signal.close("call ended")

    async def _call(self, signal: WebSocketTransport) -> None:
        loop = asyncio.get_running_loop()
        address = _address(signal)
        state = CallState(Role.CALLEE, loop.time(), setup_timeout_s=HANDSHAKE_TIMEOUT_S, offer_timeout_s=OFFER_TIMEOUT_S)
        first = await _recv_within(signal, state)
        if self.failed_hellos.blocked(address, loop.time()):  # refused unheard (the hello read, so the caller hears why)
            await self._refuse(signal, state.refuse("too many failed attempts from this address: try again later", loop.time()))
            return
        decisions = route(state, first, loop.time())
        hello = next((d.hello for d in decisions if isinstance(d, HelloIn)), None)
        if hello is None:
            self.failed_hellos.failed(address, loop.time())
            await self._refuse(signal, decisions)
            return
        cfg = self.model.cfg
        answer = answer_hello(hello, self.model_id, cfg.sample_rate, cfg.frame_ms, cfg.n_quantizers, self.token, cfg.bits_per_code)
        if isinstance(answer, Reject):
            if answer.reason == "wrong token":
                self.failed_hellos.failed(address, loop.time())
            await self._refuse(signal, state.answer(answer, loop.time()))
            return
        if self._busy.locked():
            await self._refuse(signal, state.refuse("busy: another call is in progress", loop.time()))
            return
        async with self._busy:
            # The decoder is built before the caller hears "accept": its media, which starts
            # right after, must not queue behind our set-up and arrive in a burst.
            incoming = IncomingStream(self.model, self.model_id, self.sink_factory(), signal, self.engine, concealment=self.concealment)
            await _say(signal, state.answer(answer, loop.time()))
            transport: Transport = signal
            if hello.media == "webrtc":
                transport = await self._answer_offer(signal, state)
            incoming.transport = transport
            await self._run_session(transport, hello, incoming, state)

    async def _answer_offer(self, signal: WebSocketTransport, state: CallState) -> Transport:
        loop = asyncio.get_running_loop()
        decisions = route(state, await _recv_within(signal, state), loop.time())
        offer = next((d.offer for d in decisions if isinstance(d, OfferIn)), None)
        if offer is None:
            raise TransportClosed(state.ended_by or "expected a WebRTC offer")
        transport: Transport = signal
        if not self.webrtc:
            await signal.send_control(dump_message(Answer()))  # empty: media stays on the websocket
        elif (rtc := await WebRTCTransport.answer(signal, offer, self.ice_servers)) is not None:
            # Not waiting for the channel to open: the caller's side may open first (our last
            # SCTP handshake packet lost costs us a 3 s retransmission, not the caller) and its
            # media then reaches us while we wait. The session reads it as it comes; only our
            # sending waits for the channel (`_run_session`).
            transport = rtc
        state.negotiated(loop.time())
        return transport

    async def _run_session(self, transport: Transport, hello: Hello, incoming: IncomingStream, state: CallState) -> None:
        outgoing = source = None
        if self.source_factory is not None:
            outgoing = Transmitter(self.model, self.model_id, min(self.layers, hello.max_layers), engine=self.engine, adapt=self.adapt, protect=self.protect)
            source = self.source_factory()
        opening = transport.wait_open if isinstance(transport, WebRTCTransport) else None
        self.session = CallSession(transport, outgoing, source, incoming, idle_timeout_s=self.idle_timeout_s, state=state, before_sending=opening)
        if self.on_session is not None:
            self.on_session(self.session)
        try:
            summary = await self.session.run()
            self.calls.append(summary)
            if self.stats_json is not None:
                try:
                    append_json_line(self.stats_json, summary.json_record())  # one line per call: every call's statistics kept
                except OSError as exc:
                    log.error("cannot write the call's statistics to %s: %s; they were: %s", self.stats_json, exc.strerror, summary.model_dump_json())
        finally:
            if isinstance(transport, WebRTCTransport):
                await transport.close("call ended")
            if self.on_session is not None:
                self.on_session(None)
        self.call_ended.set()

    async def _refuse(self, signal: WebSocketTransport, decisions: list[Decision]) -> None:
        """Say the state machine's reject (the reason goes to both sides), then close."""
        reason = next((d.reason for d in decisions if isinstance(d, CallEnded)), "refused")
        self.rejected.append(reason)
        log.warning("call refused: %s", reason)
        try:
            await _say(signal, decisions)
        except TransportClosed:
            pass
        await signal.close(reason)


def _address(signal: WebSocketTransport) -> str:
    remote = getattr(signal.connection, "remote_address", None)
    return str(remote[0]) if remote else "?"


async def _recv_within(signal: WebSocketTransport, state: CallState) -> bytes | str:
    """The next message within the state machine's set-up timer; TimeoutError (with its reason) after it."""
    loop = asyncio.get_running_loop()
    deadline = state.next_deadline()
    try:
        return await asyncio.wait_for(signal.recv(), None if deadline is None else max(0.0, deadline - loop.time()))
    except TimeoutError:
        state.on_timeout(loop.time() if deadline is None else max(loop.time(), deadline))
        raise TimeoutError(state.ended_by) from None


async def _say(signal: WebSocketTransport, decisions: list[Decision]) -> None:
    for decision in decisions:
        if isinstance(decision, Say):
            await signal.send_control(dump_message(decision.message))
