"""One side of a call on one connection: an outgoing half, an incoming half, or both.

A reader task takes everything the transport delivers to `protocol.router`, and the call's
state machine (`protocol.call_state`) decides where it goes: media, start and eos to the
incoming half (they describe the other side's stream); feedback and layer requests to the
outgoing half (they describe ours); bye, a closed link or the idle timer end the call. This
module only applies those decisions (tasks, sockets). Both halves run at once: a
full-duplex call. `python -m transmitter` is a session with only an outgoing half, `python
-m receiver` one with only an incoming half.

A call ends when
- both halves are done: our input ended (we said eos) and the other side's stream ended
  and played out; the side that finishes last says bye;
- the other side says bye (its stream plays out, ours stops);
- we hang up (`hang_up`: bye, then close);
- the link breaks (what is buffered plays out);
- no media has come for `idle_timeout_s` (when set and there is an incoming half): an
  authenticated caller that sends nothing must not hold a listener busy for good.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable


from protocol.call_state import (
    CallEnded,
    CallState,
    Decision,
    FeedbackIn,
    HangUp,
    Malformed,
    MediaIn,
    Rejected,
    RemoteEnded,
    RemoteStarted,
    Role,
    Say,
    StopSending,
)
from protocol.messages import dump_message
from protocol.router import route
from protocol.telemetry import CallSummary, MediaPathCounts
from receiver.incoming import IncomingStream
from transmitter.sender import Transmitter
from transmitter.sources import FrameSource
from transport.base import Transport, TransportClosed

log = logging.getLogger(__name__)


class CallSession:
    def __init__(
        self,
        transport: Transport,
        outgoing: Transmitter | None = None,
        source: FrameSource | None = None,
        incoming: IncomingStream | None = None,
        idle_timeout_s: float | None = None,
        state: CallState | None = None,
        before_sending: Callable[[], Awaitable[object]] | None = None,
    ) -> None:
        """`state`: the machine that ran the set-up (the listener's); without one, the call
        counts as established (a caller's dial did the set-up). `before_sending`: what the
        outgoing half waits for before its first frame, while the incoming half already plays
        (the listener's data channel still opening: its rate plan depends on the media path)."""
        if (outgoing is None) != (source is None):
            raise ValueError("an outgoing half needs a source")
        self.transport = transport
        self.outgoing = outgoing
        self.source = source
        self.incoming = incoming
        self.ended_by = ""
        self.malformed_control = 0
        self.illegal_control = 0  # well-formed messages out of turn (a second start, a hello mid-call), dropped
        self.state = state if state is not None else CallState.established(Role.CALLER, 0.0)
        self.state.receives = incoming is not None
        self._hangup = asyncio.Event()
        self._sending: asyncio.Task | None = None
        self.idle_timeout_s = idle_timeout_s if incoming is not None else None
        self.before_sending = before_sending

    def hang_up(self, reason: str = "hang-up") -> None:
        self.ended_by = self.ended_by or reason
        self._hangup.set()

    async def run(self) -> CallSummary:
        self.state.watch_idle(self.idle_timeout_s, asyncio.get_running_loop().time())
        reader = asyncio.create_task(self._read())
        idle = asyncio.create_task(self._watch_idle()) if self.idle_timeout_s is not None else None
        if self.outgoing is not None:
            self._sending = asyncio.create_task(self._send())
        playing = asyncio.create_task(self.incoming.play()) if self.incoming is not None else None
        halves = [t for t in (self._sending, playing) if t is not None]
        hangup = asyncio.create_task(self._hangup.wait())
        try:
            pending = set(halves)
            while pending and not self._hangup.is_set():
                done, pending = await asyncio.wait(pending | {hangup}, return_when=asyncio.FIRST_COMPLETED)
                pending.discard(hangup)
                for task in done & set(halves):
                    error = None if task.cancelled() else task.exception()
                    if isinstance(error, Exception) and not isinstance(error, TransportClosed):
                        raise error
        finally:
            for task in (*halves, hangup):
                task.cancel()
            await asyncio.gather(*halves, hangup, return_exceptions=True)
            for decision in self.state.finish(self.ended_by or "call ended"):  # bye, unless heard or the link is gone
                if isinstance(decision, Say):
                    await self._say(decision.message)
            reader.cancel()
            if idle is not None:
                idle.cancel()
            await asyncio.gather(reader, *([idle] if idle is not None else []), return_exceptions=True)
            if self.incoming is not None:
                self.incoming.close()
        self.ended_by = self.ended_by or (self.incoming.stats.ended_by if self.incoming else "") or "end of input"
        return self.summary()

    def _stop_sending(self) -> None:
        if self._sending is not None:
            self._sending.cancel()

    def summary(self) -> CallSummary:
        return CallSummary(
            ended_by=self.ended_by,
            malformed_control=self.malformed_control,
            illegal_control=self.illegal_control,
            sent=self.outgoing.stats.snapshot(self.source) if self.outgoing is not None else None,
            received=self.incoming.snapshot() if self.incoming is not None else None,
            media_path=MediaPathCounts(sent=dict(self.transport.media_sent), received=dict(self.transport.media_received)),
        )

    # ---- internals -------------------------------------------------------------------------------
    async def _send(self) -> None:
        assert self.outgoing is not None and self.source is not None
        if self.before_sending is not None:
            await self.before_sending()
        await self.outgoing.stream(self.transport, self.source)
        for decision in self.state.end_of_input():  # eos
            await self._apply(decision, asyncio.get_running_loop().time())

    async def _say(self, message) -> None:
        try:
            await self.transport.send_control(dump_message(message))
        except TransportClosed:
            self.state.send_failed()

    async def _apply(self, decision: Decision, now: float) -> None:
        """Carry out one of the state machine's decisions."""
        incoming, outgoing = self.incoming, self.outgoing
        if isinstance(decision, MediaIn):
            if incoming is not None:
                malformed = incoming.stats.malformed
                incoming.on_media(decision.data, now)
                if incoming.stats.malformed == malformed:  # junk does not keep a call up
                    self.state.media_played(now)
        elif isinstance(decision, FeedbackIn):
            if outgoing is not None:
                outgoing.on_feedback(decision.feedback, now)
        elif isinstance(decision, RemoteStarted):
            if incoming is not None:
                incoming.on_start(decision.capture_epoch)
        elif isinstance(decision, RemoteEnded):
            if incoming is not None:
                incoming.end(decision.why)  # what is buffered still plays
        elif isinstance(decision, StopSending):
            self._stop_sending()
        elif isinstance(decision, CallEnded):
            self.ended_by = self.ended_by or decision.reason
        elif isinstance(decision, HangUp):
            self._hangup.set()
        elif isinstance(decision, Say):
            await self._say(decision.message)
        elif isinstance(decision, Malformed):
            self.malformed_control += 1
            if incoming is not None:
                incoming.stats.malformed += 1
            log.debug("dropped control message: %s", decision.reason)
        elif isinstance(decision, Rejected):
            self.illegal_control += 1
            log.debug("dropped control message out of turn: %s", decision.reason)

    async def _watch_idle(self) -> None:
        """Sleep until the state machine's timer (the idle timeout), then let it decide."""
        loop = asyncio.get_running_loop()
        while (deadline := self.state.next_deadline()) is not None:
            if loop.time() < deadline:
                await asyncio.sleep(deadline - loop.time())
                continue
            decisions = self.state.on_timeout(max(loop.time(), deadline))  # a timer may fire a clock tick early
            for decision in decisions:
                if isinstance(decision, CallEnded):
                    log.warning("call ended: %s", decision.reason)
                await self._apply(decision, loop.time())
            if decisions:
                return

    async def _read(self) -> None:
        """Read until the link closes. An exception that no parser should raise (a bug, or a
        packet that found one) must not stop the reader silently, which left the call up with
        no one reading: the media unplayed, eos and bye ignored, the listener busy. It ends the
        call, with the reason logged and in `ended_by`."""
        try:
            await self._read_messages()
        except Exception as exc:  # noqa: BLE001 - anything a reader meets ends the call, not the reader alone
            log.exception("call ended: the reader failed")
            self.ended_by = self.ended_by or f"internal error: {type(exc).__name__}: {exc}"
            self._stop_sending()
            if self.incoming is not None:
                self.incoming.end(self.ended_by)
            self._hangup.set()

    async def _read_messages(self) -> None:
        loop = asyncio.get_running_loop()
        while True:
            try:
                message = await self.transport.recv()
            except TransportClosed as exc:
                for decision in self.state.on_link_closed(str(exc), loop.time()):
                    await self._apply(decision, loop.time())
                return
            now = loop.time()
            for decision in route(self.state, message, now):
                await self._apply(decision, now)
