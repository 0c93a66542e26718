"""The sending half: source -> streaming encoder -> packets -> transport; feedback back.

`stream` sends one source's frames and returns when it ends; `on_feedback` takes the
receiver's reports (fed by whoever reads the connection, through `protocol.router`); `handshake` is the caller's hello (its rules are `protocol.call_state`'s).
`run` is the one-way call of `python -m transmitter`: handshake, stream, end of stream, bye.
A full-duplex call (`ssvoip.session`) uses the same pieces.

What leaves in which packet (sizes, redundancy, thinning, skipping on a backlog, sequence
numbers, timestamps, flags) and the RTT from the feedback's echo are `protocol.packetizer`'s
(sans-I/O); this side encodes frames and moves bytes.
"""

from __future__ import annotations

import asyncio
import logging
import math
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass

import numpy as np

from codec.engine import DEFAULT_ENGINE, frame_encoder
from codec.weights import AnyCodec
from protocol.call_state import Accepted, CallState, Decision, FeedbackIn, Malformed, Rejected, Role, Say
from protocol.messages import PROTOCOL_VERSION, Accept, Feedback, Hello, MediaPath, Start, dump_message
from protocol.packetizer import Packetizer, Send, Skip
from protocol.packets import OVERHEAD_WEBSOCKET, Frame
from protocol.ratecontrol import RatePolicy
from protocol.router import route
from protocol.telemetry import SendSnapshot
from transmitter.sources import FrameSource, capture_losses
from transport.base import Transport, TransportClosed

log = logging.getLogger(__name__)
# Feedback closer than this to the last report taken is ignored (counted): a receiver reports
# every 100 ms and early at most every 30 ms (protocol.feedback), so only a hostile or broken
# one sends faster, and 20,000 reports a second cost the rate policy 13 s of CPU a second.
MIN_FEEDBACK_GAP_S = 0.01
# How long the caller waits for the answer to its hello. Under 10 % loss a lost segment of the
# hello costs a TCP retransmission (1 s, then 2 s) and a busy listener builds its decoder and
# sink before it answers: 5 s was too tight; a listener that is gone is still noticed.
HELLO_ANSWER_TIMEOUT_S = 12.0


class CallRefused(Exception):
    """The other side rejected the call; the message is its reason."""


class CallFailed(Exception):
    """The call ended on an error of our own (the message says which); it was logged."""


@dataclass
class SendStats:
    frames: int = 0
    sent: int = 0  # packets
    skipped: int = 0  # packets not sent because the link was backed up
    drained: int = 0  # packets not sent to drain a queue (the rate policy's send_every)
    bytes: int = 0
    wire_bytes: int = 0  # packets + the transport's per-packet overhead (what the network carries)
    last_feedback: Feedback | None = None
    feedback_count: int = 0
    feedback_ignored: int = 0  # reports that came faster than MIN_FEEDBACK_GAP_S after the last one taken
    rtt_ms: float | None = None  # smoothed (RFC 6298's 1/8 gain)
    level_dbfs: float = -120.0  # the last frame's input level (before muting)
    layers: int = 0  # layers of the last frame sent
    cpu_seconds: float = 0.0  # process CPU time while streaming (all threads)
    wall_seconds: float = 0.0

    def snapshot(self, source: object = None) -> SendSnapshot:
        """The counters as a typed record; `source` (the call's input) adds the frames lost at capture."""
        overruns, outage_dropped = capture_losses(source)
        return SendSnapshot(
            frames=self.frames,
            sent=self.sent,
            skipped=self.skipped,
            drained=self.drained,
            bytes=self.bytes,
            wire_bytes=self.wire_bytes,
            capture_overruns=overruns,
            outage_dropped=outage_dropped,
            feedback_count=self.feedback_count,
            feedback_ignored=self.feedback_ignored,
            rtt_ms=round(self.rtt_ms, 1) if self.rtt_ms is not None else None,
            remote_loss_fraction=self.last_feedback.loss_fraction if self.last_feedback is not None else None,
            cpu_percent_of_one_core=round(100 * self.cpu_seconds / self.wall_seconds, 1) if self.wall_seconds else None,
        )


class Transmitter:
    def __init__(
        self,
        model: AnyCodec,
        model_id: str,
        layers: int,
        token: str = "",
        denoise: bool = False,
        engine: str = DEFAULT_ENGINE,
        adapt: bool = False,
        protect: bool = False,
    ) -> None:
        self.model = model
        self.model_id = model_id
        self.cfg = model.cfg
        self.layers = layers
        self.token = token
        # sequence numbers, timestamps and the RTT table outlive a stream (a reconnecting caller)
        self.packetizer = Packetizer(model.cfg.hop, model.cfg.bits_per_code)
        self.denoise = denoise  # checked against the model (its setter)
        self.engine = engine
        self.muted = False  # send silence (quiet frames) instead of the input
        self.adapt = adapt  # follow the bandwidth estimate (layers, frames per packet); `layers` is the ceiling
        self.protect = protect  # carry earlier frames' coarse layers when the receiver reports loss
        self.policy: RatePolicy | None = None
        self.overhead_bytes = OVERHEAD_WEBSOCKET
        self._transport: Transport | None = None
        self.call_state = CallState(Role.CALLER, receives=False)  # a new one at each handshake
        self.stats = SendStats()
        self._feedback_at = -math.inf  # when the last feedback taken arrived
        self._executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix="encoder")

    @property
    def has_denoise(self) -> bool:
        """Whether the model has a denoise switch (a config with denoise conditioning)."""
        return bool(getattr(self.cfg, "denoise_conditioning", False))

    @property
    def denoise(self) -> bool:
        """Denoise in the encoder, and say so in the packets. A switch per frame, like `muted`:
        set it at any time (the console's `d` key), the next frame is encoded with it; the
        encoder's state is kept, so switching costs no latency."""
        return self.packetizer.denoise

    @denoise.setter
    def denoise(self, on: bool) -> None:
        if on and not self.has_denoise:
            raise ValueError(f"model {self.model_id} has no denoise switch")
        self.packetizer.denoise = on

    # ---- the caller's side of the handshake ------------------------------------------------------
    def hello(self, media: MediaPath = "websocket") -> Hello:
        return Hello(
            protocol_version=PROTOCOL_VERSION,
            model_id=self.model_id,
            sample_rate=self.cfg.sample_rate,
            frame_ms=self.cfg.frame_ms,
            max_layers=self.cfg.n_quantizers,
            bits_per_stage=self.cfg.bits_per_code,
            token=self.token,
            media=media,
        )

    async def handshake(self, transport: Transport, media: MediaPath = "websocket", timeout: float | None = None) -> Accept:
        """Say hello and take the answer within `timeout` (default HELLO_ANSWER_TIMEOUT_S)."""
        loop = asyncio.get_running_loop()
        timeout = HELLO_ANSWER_TIMEOUT_S if timeout is None else timeout
        # A new machine each time: a reconnecting caller says hello again on a new connection.
        state = self.call_state = CallState(Role.CALLER, loop.time(), setup_timeout_s=timeout, receives=False)
        await self._say(transport, state.send_hello(self.hello(media), loop.time()))
        deadline = state.next_deadline()
        assert deadline is not None
        try:
            reply = await asyncio.wait_for(transport.recv(), timeout=max(0.0, deadline - loop.time()))
            decisions = route(state, reply, loop.time())
        except TimeoutError:
            decisions = state.on_timeout(max(loop.time(), deadline))  # a timer may fire a clock tick early
        except TransportClosed as exc:
            decisions = state.on_link_closed(str(exc), loop.time())
        for decision in decisions:
            if isinstance(decision, Accepted):
                self.layers = min(self.layers, decision.accept.max_layers)
                return decision.accept
        raise CallRefused(state.ended_by or "no accept")

    @staticmethod
    async def _say(transport: Transport, decisions: list[Decision]) -> None:
        for decision in decisions:
            if isinstance(decision, Say):
                await transport.send_control(dump_message(decision.message))

    # ---- feedback --------------------------------------------------------------------------------
    def on_feedback(self, message: Feedback, now: float) -> None:
        if now - self._feedback_at < MIN_FEEDBACK_GAP_S:
            self.stats.feedback_ignored += 1
            return
        self._feedback_at = now
        self.stats.last_feedback = message
        self.stats.feedback_count += 1
        if self.packetizer.on_echo(message.highest_seq, message.hold_ms, now) is not None:
            self.stats.rtt_ms = self.packetizer.rtt_ms
        if self.policy is not None:
            buffered = self._transport.buffered_bytes if self._transport is not None else 0
            self.policy.on_feedback(now, message.highest_seq, message.received, message.received_bytes, message.recovered, message.queue_delay_ms, buffered)

    # ---- media -----------------------------------------------------------------------------------
    async def stream(self, transport: Transport, source: FrameSource) -> SendStats:
        """Send `source`'s frames until it ends (say `start` first; the caller says what comes after).

        With adaptation on, every feedback updates the plan (layers, frames per packet,
        redundancy) that the next frames follow; frames wait for their packet to fill."""
        loop = asyncio.get_running_loop()
        cpu, wall = time.process_time(), time.monotonic()
        hop = self.cfg.hop
        self._transport = transport
        self.overhead_bytes = transport.overhead_bytes
        if self.adapt or self.protect:
            self.policy = RatePolicy(
                self.layers,
                self.cfg.bits_per_code,
                hop / self.cfg.sample_rate,
                self.overhead_bytes,
                adapt=self.adapt,
                protect=self.protect,
                drain_above_ms=getattr(transport, "drain_above_ms", None),
                min_layers=self.cfg.min_useful_stages,
            )
        encoder = await loop.run_in_executor(self._executor, frame_encoder, self.model, self.model_id, self.engine)
        packetizer = self.packetizer
        packetizer.begin()
        try:
            # The first call is slow (lazy set-up): pay it before capture starts, so that the
            # first frames do not leave in a burst that the receiver must buffer. With a denoise
            # switch, for both settings: the first toggle mid-call must not pay it either.
            for denoise in (False, True) if self.has_denoise else (False,):
                await loop.run_in_executor(self._executor, self._encode, encoder, np.zeros(hop, np.float32), self.layers, denoise)
            encoder.reset()
            source.start_at = loop.time()  # a file's frame 0 is "captured" from now
            async for frame in source:
                if self.stats.frames == 0:  # tell the receiver when frame 0 was captured (mouth-to-ear)
                    capture_start = getattr(source, "capture_start", lambda t: t - hop / self.cfg.sample_rate)
                    epoch = capture_start(loop.time()) + time.time() - loop.time()
                    await transport.send_control(dump_message(Start(capture_epoch=epoch)))
                rms = float(np.sqrt(np.mean(np.square(frame))))
                self.stats.level_dbfs = 20 * math.log10(max(rms, 1e-6))
                if self.muted:
                    frame, rms = np.zeros_like(frame), 0.0
                plan = self.policy.plan if self.policy is not None else None
                layers = plan.layers if plan else self.layers
                # read once a frame, here on the loop: a toggle between frames takes effect on the next
                codes = await loop.run_in_executor(self._executor, self._encode, encoder, frame, layers, self.denoise)
                self.stats.frames += 1
                self.stats.layers = layers
                await self._send(transport, packetizer.push(Frame(codes), rms, plan, transport.buffered_bytes))
            plan = self.policy.plan if self.policy is not None else None
            await self._send(transport, packetizer.flush(plan, transport.buffered_bytes))
        finally:
            await loop.run_in_executor(self._executor, encoder.close)
            self.stats.cpu_seconds = time.process_time() - cpu
            self.stats.wall_seconds = time.monotonic() - wall
        return self.stats

    async def _send(self, transport: Transport, out: Send | Skip | None) -> None:
        """Hand the packetizer's packet to the transport and count what became of it."""
        if isinstance(out, Skip):
            if out.reason == "drained":
                self.stats.drained += 1
            else:
                self.stats.skipped += 1  # it would leave late: the receiver conceals it instead
        elif out is not None:
            if await transport.send_media(out.data):
                self.packetizer.sent(out, asyncio.get_running_loop().time())
                self.stats.sent += 1
                self.stats.bytes += len(out.data)
                self.stats.wire_bytes += len(out.data) + self.overhead_bytes
            else:
                self.stats.skipped += 1  # the transport refused it: its queue is full

    @staticmethod
    def _encode(encoder, frame: np.ndarray, layers: int, denoise: bool) -> np.ndarray:
        return encoder.encode(frame, layers, float(denoise))[:, 0]

    # ---- one-way call ----------------------------------------------------------------------------
    async def run(self, transport: Transport, source: FrameSource) -> SendStats:
        """Stream `source` to a receiver until it ends, then say so and bye."""
        await self.handshake(transport)
        reader = asyncio.create_task(self._read_control(transport))
        streaming = asyncio.create_task(self.stream(transport, source))
        try:
            await asyncio.wait({reader, streaming}, return_when=asyncio.FIRST_COMPLETED)
            if reader.done() and not reader.cancelled() and reader.exception() is not None:
                # The reader met what no parser should raise: end the call, say why, never go
                # on deaf to the receiver's feedback and bye.
                exc = reader.exception()
                reason = f"internal error: {type(exc).__name__}: {exc}"
                log.error("call ended: the control reader failed", exc_info=exc)
                streaming.cancel()
                await asyncio.gather(streaming, return_exceptions=True)
                try:
                    await self._say(transport, self.call_state.finish(reason))
                except TransportClosed:
                    pass
                raise CallFailed(reason)
            await streaming
            await self._say(transport, [*self.call_state.end_of_input(), *self.call_state.finish("end of input")])
        finally:
            reader.cancel()
            streaming.cancel()
            await asyncio.gather(reader, streaming, return_exceptions=True)
        return self.stats

    async def _read_control(self, transport: Transport) -> None:
        """The one-way call's reader: the receiver's reports reach this half. What a duplex
        listener sends besides (its media, start, eos) has no one to play it here; a closed
        link or the receiver's bye is heard by the next send (TransportClosed), as before."""
        loop = asyncio.get_running_loop()
        while True:
            try:
                message = await transport.recv()
            except TransportClosed:
                return
            now = loop.time()
            for decision in route(self.call_state, message, now):
                if isinstance(decision, FeedbackIn):
                    self.on_feedback(decision.feedback, now)
                elif isinstance(decision, (Malformed, Rejected)):
                    log.debug("dropped control message: %s", decision.reason)
