"""One side of a call on one connection: an outgoing half, an incoming half, or both.

A reader task takes everything the transport delivers and hands it to the half it concerns:
media, start and eos to the incoming half (they describe the other side's stream); feedback
and layer requests to the outgoing half (they describe ours). Both halves run at once: a
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
from collections.abc import AsyncIterable
from typing import Any

import numpy as np

from protocol.feedback import decode_feedback, is_feedback
from protocol.messages import Bye, EndOfStream, MessageError, Start, dump_message, parse_message
from protocol.packets import PacketError
from receiver.incoming import IncomingStream
from transmitter.sender import Transmitter
from transport.base import Transport, TransportClosed

log = logging.getLogger(__name__)


class CallSession:
    def __init__(
        self, transport: Transport, outgoing: Transmitter | None = None, source: AsyncIterable[np.ndarray] | None = None,
        incoming: IncomingStream | None = None, idle_timeout_s: float | None = None,
    ) -> None:
        if (outgoing is None) != (source is None):
            raise ValueError("an outgoing half needs a source")
        self.transport = transport
        self.outgoing = outgoing
        self.source = source
        self.incoming = incoming
        self.ended_by = ""
        self.malformed_control = 0
        self._hangup = asyncio.Event()
        self._bye_received = False
        self._link_closed = False
        self._sending: asyncio.Task | None = None
        self.idle_timeout_s = idle_timeout_s if incoming is not None else None
        self._media_at = 0.0  # loop time of the last media packet (or of the call's start)

    def hang_up(self, reason: str = "hang-up") -> None:
        self.ended_by = self.ended_by or reason
        self._hangup.set()

    async def run(self) -> dict[str, Any]:
        self._media_at = asyncio.get_running_loop().time()
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
                    if not task.cancelled() and isinstance(task.exception(), Exception) and not isinstance(task.exception(), TransportClosed):
                        raise task.exception()
        finally:
            for task in (*halves, hangup):
                task.cancel()
            await asyncio.gather(*halves, hangup, return_exceptions=True)
            if not self._bye_received and not self._link_closed:
                await self._say(Bye(reason=self.ended_by or "call ended"))
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

    def summary(self) -> dict[str, Any]:
        out: dict[str, Any] = {"ended_by": self.ended_by}
        if self.outgoing is not None:
            s = self.outgoing.stats
            out["sent"] = {
                "frames": s.frames, "sent": s.sent, "skipped": s.skipped, "bytes": s.bytes,
                "rtt_ms": round(s.rtt_ms, 1) if s.rtt_ms is not None else None,
                "remote_loss_fraction": s.last_feedback.loss_fraction if s.last_feedback else None,
                "feedback_ignored": s.feedback_ignored,
                "cpu_percent_of_one_core": round(100 * s.cpu_seconds / s.wall_seconds, 1) if s.wall_seconds else None,
            }
        if self.incoming is not None:
            out["received"] = self.incoming.summary()
        out["media_path"] = {"sent": dict(self.transport.media_sent), "received": dict(self.transport.media_received)}
        return out

    # ---- internals -------------------------------------------------------------------------------
    async def _send(self) -> None:
        assert self.outgoing is not None and self.source is not None
        await self.outgoing.stream(self.transport, self.source)
        await self._say(EndOfStream())

    async def _say(self, message) -> None:
        try:
            await self.transport.send_control(dump_message(message))
        except TransportClosed:
            self._link_closed = True

    def _on_feedback(self, data: bytes, now: float) -> None:
        try:
            feedback = decode_feedback(data)
        except PacketError:
            self.malformed_control += 1
            if self.incoming is not None:
                self.incoming.stats.malformed += 1
            return
        if self.outgoing is not None:
            self.outgoing.on_control(feedback, now)

    async def _watch_idle(self) -> None:
        assert self.idle_timeout_s is not None
        loop = asyncio.get_running_loop()
        while True:
            left = self._media_at + self.idle_timeout_s - loop.time()
            if left <= 0:
                break
            await asyncio.sleep(left)
        self.ended_by = self.ended_by or f"no media for {self.idle_timeout_s:g} s"
        log.warning("call ended: %s", self.ended_by)
        self._stop_sending()
        if self.incoming is not None:
            self.incoming.end(self.ended_by)
        self._hangup.set()

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
                self._link_closed = True
                if not self._bye_received:
                    self.ended_by = self.ended_by or f"link closed ({exc})"
                self._stop_sending()
                if self.incoming is not None:
                    self.incoming.end(f"link closed ({exc})")  # what is buffered still plays
                else:
                    self._hangup.set()
                return
            now = loop.time()
            if isinstance(message, bytes):
                if is_feedback(message):
                    self._on_feedback(message, now)
                elif self.incoming is not None:
                    malformed = self.incoming.stats.malformed
                    self.incoming.on_media(message, now)
                    if self.incoming.stats.malformed == malformed:  # junk does not keep a call up
                        self._media_at = now
                continue
            try:
                parsed = parse_message(message)
            except MessageError as exc:
                self.malformed_control += 1
                if self.incoming is not None:
                    self.incoming.stats.malformed += 1
                log.debug("dropped control message: %s", exc)
                continue
            if isinstance(parsed, Bye):
                self._bye_received = True
                self.ended_by = self.ended_by or (f"the other side hung up ({parsed.reason})" if parsed.reason else "the other side hung up")
                self._stop_sending()  # the other side hung up: stop talking, play what came
                if self.incoming is not None:
                    self.incoming.on_control(parsed)
                else:
                    self._hangup.set()
            elif isinstance(parsed, (Start, EndOfStream)):
                if self.incoming is not None:
                    self.incoming.on_control(parsed)
            elif self.outgoing is not None:
                self.outgoing.on_control(parsed, now)
