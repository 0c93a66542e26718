"""The sending half: source -> streaming encoder -> packets -> transport; feedback back.

`stream` sends one source's frames and returns when it ends; `on_control` takes the
receiver's feedback and layer requests (fed by whoever reads the connection); `handshake`
is the caller's hello. `run` is the one-way call of `python -m transmitter`: handshake,
stream, end of stream, bye. A full-duplex call (`ssvoip.session`) uses the same pieces.

RTT comes from our own packets: the sender remembers when each sequence number left, the
receiver's feedback names the highest one it has and how long it held it since.
"""

from __future__ import annotations

import asyncio
import logging
import math
import time
from collections.abc import AsyncIterable
from concurrent.futures import ThreadPoolExecutor
from collections import deque
from dataclasses import dataclass

import numpy as np

from codec.engine import DEFAULT_ENGINE, frame_encoder
from codec.model import Codec
from protocol.messages import (
    PROTOCOL_VERSION, Accept, Bye, EndOfStream, Feedback, Hello, LayerRequest, Message, MessageError, Reject, Start,
    dump_message, parse_message,
)
from protocol.feedback import decode_feedback, is_feedback
from protocol.packets import Frame, MediaPacket, PacketError, RedundantFrame, encode_packet
from protocol.ratecontrol import OVERHEAD_WEBSOCKET, PacketSizer, RatePolicy, SendPlan
from transport.base import Transport, TransportClosed

log = logging.getLogger(__name__)
QUIET_RMS = 10 ** (-45 / 20)  # frames below -45 dBFS are marked quiet: the receiver may drop them
_SEND_TIMES = 1024  # sequence numbers remembered for RTT (20 s at 50 packets a second)
_HISTORY = 16  # frames kept for redundancy (the deepest copy lies BURST_HORIZON_FRAMES = 8 back)
MAX_BACKLOG_S = 0.1  # a packet is skipped while our unsent bytes would take longer than this to leave


class CallRefused(Exception):
    """The other side rejected the call; the message is its reason."""


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
    remote_max_layers: int | None = None
    rtt_ms: float | None = None  # smoothed (RFC 6298's 1/8 gain)
    level_dbfs: float = -120.0  # the last frame's input level (before muting)
    layers: int = 0  # layers of the last frame sent
    cpu_seconds: float = 0.0  # process CPU time while streaming (all threads)
    wall_seconds: float = 0.0


class Transmitter:
    def __init__(
        self, model: Codec, model_id: str, layers: int, token: str = "", denoise: bool = False, engine: str = DEFAULT_ENGINE,
        adapt: bool = False, protect: bool = False,
    ) -> None:
        self.model = model
        self.model_id = model_id
        self.cfg = model.cfg
        self.layers = layers
        self.token = token
        self.denoise = denoise
        self.engine = engine
        self.muted = False  # send silence (quiet frames) instead of the input
        self.adapt = adapt  # follow the bandwidth estimate (layers, frames per packet); `layers` is the ceiling
        self.protect = protect  # carry earlier frames' coarse layers when the receiver reports loss
        self.policy: RatePolicy | None = None
        self.overhead_bytes = OVERHEAD_WEBSOCKET
        self._transport: Transport | None = None
        self._seq = 0  # packets sent
        self._packets = 0  # packets formed (sent or not)
        self.stats = SendStats()
        self._send_times = np.full(_SEND_TIMES, np.nan)
        self._executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix="encoder")

    # ---- the caller's side of the handshake ------------------------------------------------------
    def hello(self, media: str = "websocket") -> Hello:
        return Hello(
            protocol_version=PROTOCOL_VERSION, model_id=self.model_id, sample_rate=self.cfg.sample_rate,
            frame_ms=self.cfg.frame_ms, max_layers=self.cfg.n_quantizers, token=self.token, media=media,
        )

    async def handshake(self, transport: Transport, media: str = "websocket") -> Accept:
        await transport.send_control(dump_message(self.hello(media)))
        try:
            reply = await asyncio.wait_for(transport.recv(), timeout=5.0)
        except TimeoutError:
            raise CallRefused("no answer to hello within 5 s") from None
        except TransportClosed as exc:
            raise CallRefused(f"the other side closed the connection ({exc})") from None
        if not isinstance(reply, str):
            raise CallRefused("the other side answered hello with media")
        try:
            answer = parse_message(reply)
        except MessageError as exc:
            raise CallRefused(f"bad answer to hello: {exc}") from None
        if isinstance(answer, Reject):
            raise CallRefused(answer.reason)
        if not isinstance(answer, Accept):
            raise CallRefused(f"unexpected answer to hello: {answer.type}")
        self.layers = min(self.layers, answer.max_layers)
        return answer

    # ---- feedback --------------------------------------------------------------------------------
    def on_control(self, message: Message, now: float) -> None:
        if isinstance(message, Feedback):
            self.stats.last_feedback = message
            self.stats.feedback_count += 1
            sent_at = self._send_times[message.highest_seq % _SEND_TIMES]
            if not math.isnan(sent_at) and message.highest_seq < self._seq:
                rtt = 1000 * (now - sent_at) - message.hold_ms
                if 0 <= rtt < 60_000:
                    old = self.stats.rtt_ms
                    self.stats.rtt_ms = rtt if old is None else old + (rtt - old) / 8
            if self.policy is not None:
                buffered = self._transport.buffered_bytes if self._transport is not None else 0
                self.policy.on_feedback(
                    now, message.highest_seq, message.received, message.received_bytes, message.recovered,
                    message.queue_delay_ms, buffered,
                )
        elif isinstance(message, LayerRequest):
            self.stats.remote_max_layers = message.max_layers

    # ---- media -----------------------------------------------------------------------------------
    async def stream(self, transport: Transport, source: AsyncIterable[np.ndarray]) -> SendStats:
        """Send `source`'s frames until it ends (say `start` first; the caller says what comes after).

        With adaptation on, every feedback updates the plan (layers, frames per packet,
        redundancy) that the next frames follow; frames wait for their packet to fill."""
        loop = asyncio.get_running_loop()
        cpu, wall = time.process_time(), time.monotonic()
        hop = self.cfg.hop
        self._transport = transport
        self.overhead_bytes = getattr(transport, "overhead_bytes", OVERHEAD_WEBSOCKET)
        if self.adapt or self.protect:
            self.policy = RatePolicy(
                self.layers, self.cfg.bits_per_code, hop / self.cfg.sample_rate, self.overhead_bytes,
                adapt=self.adapt, protect=self.protect, drain_above_ms=getattr(transport, "drain_above_ms", None),
            )
        encoder = await loop.run_in_executor(self._executor, frame_encoder, self.model, self.model_id, self.engine)
        pending: list[Frame] = []  # frames waiting for their packet
        sizer, packet_frames = PacketSizer(), 1
        history: deque[Frame] = deque(maxlen=_HISTORY)  # the last frames formed, newest last
        quiet = True
        try:
            # The first call is slow (lazy set-up): pay it before capture starts, so that the
            # first frames do not leave in a burst that the receiver must buffer.
            await loop.run_in_executor(self._executor, self._encode, encoder, np.zeros(hop, np.float32), self.layers)
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
                layers = min(plan.layers if plan else self.layers, self.stats.remote_max_layers or self.layers)
                codes = await loop.run_in_executor(self._executor, self._encode, encoder, frame, layers)
                pending.append(Frame(codes))
                quiet = quiet and rms < QUIET_RMS
                self.stats.frames += 1
                self.stats.layers = layers
                if len(pending) == 1:  # this frame starts a packet: how many frames it takes
                    packet_frames = sizer.next_size(plan.frames_per_packet) if plan else 1
                if len(pending) >= packet_frames:
                    self._packets += 1
                    if plan is None or self._packets % plan.send_every == 0:
                        await self._send_packet(transport, pending, history, plan, quiet)
                    else:
                        self.stats.drained += 1
                    history.extend(pending)
                    pending, quiet = [], True
            if pending:
                await self._send_packet(transport, pending, history, self.policy.plan if self.policy else None, quiet)
        finally:
            await loop.run_in_executor(self._executor, encoder.close)
            self.stats.cpu_seconds = time.process_time() - cpu
            self.stats.wall_seconds = time.monotonic() - wall
        return self.stats

    async def _send_packet(self, transport: Transport, frames: list[Frame], history: deque[Frame], plan: SendPlan | None, quiet: bool) -> None:
        first = self.stats.frames - len(frames)  # frame index of the packet's first frame
        redundancy: tuple[RedundantFrame, ...] = ()
        if plan is not None and plan.redundant_frames:
            redundancy = tuple(
                RedundantFrame(back=b, frame=Frame(history[-b].codes[: plan.redundant_layers]))
                for b in plan.redundant_backs if b <= len(history)
            )
        seq = self._seq
        packet = MediaPacket(
            seq=seq, timestamp=first * self.cfg.hop, frames=tuple(frames), denoise=self.denoise,
            talkspurt=seq == 0, quiet=quiet, redundancy=redundancy,
        )
        data = encode_packet(packet, self.cfg.bits_per_code)
        backlog = transport.buffered_bytes
        if plan is not None and backlog and 8 * backlog > plan.wire_bps * MAX_BACKLOG_S:
            self.stats.skipped += 1  # it would leave late: the receiver conceals it instead
            return
        if await transport.send_media(data):
            self._seq += 1  # a packet never sent is no loss on the network
            self._send_times[seq % _SEND_TIMES] = asyncio.get_running_loop().time()
            self.stats.sent += 1
            self.stats.bytes += len(data)
            self.stats.wire_bytes += len(data) + self.overhead_bytes
        else:
            self.stats.skipped += 1

    def _encode(self, encoder, frame: np.ndarray, layers: int) -> np.ndarray:
        return encoder.encode(frame, layers, float(self.denoise))[:, 0]

    # ---- one-way call ----------------------------------------------------------------------------
    async def run(self, transport: Transport, source: AsyncIterable[np.ndarray]) -> SendStats:
        """Stream `source` to a receiver until it ends, then say so and bye."""
        await self.handshake(transport)
        reader = asyncio.create_task(self._read_control(transport))
        try:
            await self.stream(transport, source)
            await transport.send_control(dump_message(EndOfStream()))
            await transport.send_control(dump_message(Bye(reason="end of input")))
        finally:
            reader.cancel()
        return self.stats

    async def _read_control(self, transport: Transport) -> None:
        loop = asyncio.get_running_loop()
        while True:
            try:
                message = await transport.recv()
            except TransportClosed:
                return
            try:
                if isinstance(message, str):
                    self.on_control(parse_message(message), loop.time())
                elif is_feedback(message):
                    self.on_control(decode_feedback(message), loop.time())
                # other bytes: a duplex listener's media; this side does not play
            except (MessageError, PacketError) as exc:
                log.debug("dropped control message: %s", exc)
