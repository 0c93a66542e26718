"""The receiving end: websocket server -> playout buffer -> streaming decoder -> sink.

One call at a time per `Receiver`; each call runs two tasks: `_receive` parses what
arrives (malformed packets and messages are counted and dropped, the call goes on) and
`_play` wakes at the playout buffer's deadlines (the fastest recent arrival of the next
frame plus the target delay, never sooner than a frame after the last), asks it what to
play, decodes or conceals, and writes to the sink. Model calls run in one worker
thread, so the loop never blocks on them.
"""

from __future__ import annotations

import asyncio
import json
import logging
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

import numpy as np
import torch
from websockets.asyncio.server import Server, ServerConnection, serve

from codec.model import Codec
from codec.streaming import StreamingDecoder
from protocol.messages import Bye, Feedback, Hello, MessageError, Reject, Start, dump_message, parse_message
from protocol.packets import PacketError, decode_packet
from protocol.playout import Action, PlayoutBuffer
from protocol.session import answer_hello
from protocol.stats import ReceiveStats
from receiver.concealment import Concealer
from receiver.sinks import Sink
from transport.base import TransportClosed
from transport.websocket import MAX_MESSAGE_BYTES, WebSocketTransport

log = logging.getLogger(__name__)
FEEDBACK_S = 0.1
_POLL_S = 0.005  # before playout starts


@dataclass
class CallStats:
    frames_played: int = 0
    malformed: int = 0
    payload_bytes: int = 0
    layers: list[int] = field(default_factory=list)
    buffer_ms: list[float] = field(default_factory=list)
    mouth_to_ear_ms: list[float] = field(default_factory=list)
    ended_by: str = ""
    cpu_seconds: float = 0.0  # process CPU time spent during the call (all threads)
    wall_seconds: float = 0.0

    def summary(self, receive: ReceiveStats, playout: PlayoutBuffer, frame_s: float) -> dict:
        def pct(values: list[float], q: float) -> float | None:
            return round(float(np.percentile(values, q)), 1) if values else None

        seconds = max(frame_s, len(self.layers) * frame_s)
        return {
            "frames_played": self.frames_played,
            "frames_received": receive.received,
            "loss_fraction": round(max(0, receive.lost) / receive.expected, 4) if receive.expected else 0.0,
            "jitter_ms": round(receive.jitter_ms, 2),
            "concealed_fraction": round(playout.stats.concealed_fraction, 4),
            "late": playout.stats.late,
            "duplicates": playout.stats.duplicate,
            "skipped_for_delay": playout.stats.skipped,
            "malformed": self.malformed,
            "packet_kbps": round(8 * self.payload_bytes / seconds / 1000, 2),
            "layers_mean": round(float(np.mean(self.layers)), 2) if self.layers else 0.0,
            "buffer_ms_mean": round(float(np.mean(self.buffer_ms)), 1) if self.buffer_ms else 0.0,
            "target_delay_ms": round(playout.target_ms, 1),
            "mouth_to_ear_ms": {"p50": pct(self.mouth_to_ear_ms, 50), "p95": pct(self.mouth_to_ear_ms, 95)},
            "ended_by": self.ended_by,
            "cpu_percent_of_one_core": round(100 * self.cpu_seconds / self.wall_seconds, 1) if self.wall_seconds else None,
        }


class Call:
    """One incoming call after a successful handshake."""

    def __init__(self, receiver: "Receiver", transport: WebSocketTransport, hello: Hello) -> None:
        cfg = receiver.model.cfg
        self.receiver = receiver
        self.transport = transport
        self.hello = hello
        self.cfg = cfg
        self.frame_s = cfg.hop / cfg.sample_rate
        self.receive_stats = ReceiveStats(cfg.sample_rate)
        self.playout = PlayoutBuffer(cfg.hop, cfg.sample_rate)
        self.concealer = Concealer(cfg.hop)
        self.stats = CallStats()
        self.sink = receiver.sink_factory()
        self._bye = asyncio.Event()
        self._closed = asyncio.Event()
        self._executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix="decoder")
        self._epoch_offset = time.time() - asyncio.get_running_loop().time()  # loop clock -> wall clock
        self.capture_epoch: float | None = None  # from the caller's start message

    async def run(self) -> dict:
        receive = asyncio.create_task(self._receive())
        cpu, wall = time.process_time(), time.monotonic()
        try:
            with StreamingDecoder(self.receiver.model) as decoder:
                await self._play(decoder)
        finally:
            receive.cancel()
            self.sink.close()
            self._executor.shutdown(wait=False)
            self.stats.cpu_seconds = time.process_time() - cpu
            self.stats.wall_seconds = time.monotonic() - wall
        return self.stats.summary(self.receive_stats, self.playout, self.frame_s)

    async def _receive(self) -> None:
        loop = asyncio.get_running_loop()
        bits, max_layers = self.cfg.bits_per_code, self.cfg.n_quantizers
        while True:
            try:
                message = await self.transport.recv()
            except TransportClosed as exc:
                self.stats.ended_by = self.stats.ended_by or f"link closed ({exc})"
                self._closed.set()
                return
            now = loop.time()
            if isinstance(message, str):
                try:
                    parsed = parse_message(message)
                except MessageError:
                    self.stats.malformed += 1
                    continue
                if isinstance(parsed, Bye):
                    self.stats.ended_by = f"bye ({parsed.reason})" if parsed.reason else "bye"
                    self._bye.set()
                elif isinstance(parsed, Start):
                    self.capture_epoch = parsed.capture_epoch
                continue
            try:
                packet = decode_packet(message, bits, max_layers)
            except PacketError:
                self.stats.malformed += 1
                continue
            if not self.receive_stats.on_packet(packet.seq, packet.timestamp, now):
                continue
            self.stats.payload_bytes += len(message)
            for i, frame in enumerate(packet.frames):
                self.playout.push(packet.timestamp + i * self.cfg.hop, frame, now, quiet=packet.quiet)
            for red in packet.redundancy:
                self.playout.push(packet.timestamp - red.back * self.cfg.hop, red.frame, now, redundant=True)

    def _done(self) -> bool:
        ended = self._bye.is_set() or self._closed.is_set()
        return ended and self.playout.buffered_frames == 0

    async def _play(self, decoder: StreamingDecoder) -> None:
        """Pop at the playout buffer's deadlines, never sooner than one frame after the last pop."""
        loop = asyncio.get_running_loop()
        cursor = loop.time()  # when the audio written so far has finished playing
        next_feedback = cursor + FEEDBACK_S
        index = 0  # frame index being played (for mouth-to-ear)
        while not self._done():
            due = self.playout.next_deadline()
            wake = cursor if due is None else max(cursor, due)
            await asyncio.sleep(max(0.0, wake - loop.time()))
            now = loop.time()
            decision = self.playout.pop(now)
            if decision.action is Action.WAIT:
                cursor = now + _POLL_S
            else:
                audio = await loop.run_in_executor(self._executor, self._render, decoder, decision)
                self.sink.write(audio)
                self._account(decision, loop.time(), index)
                if decision.action is not Action.EXPAND:
                    index += 1 + len(decision.skipped)
                cursor = max(cursor + self.frame_s, now)
            if now >= next_feedback:
                next_feedback = now + FEEDBACK_S
                await self._feedback()

    def _render(self, decoder: StreamingDecoder, decision) -> np.ndarray:
        """Runs in the worker thread: decode the frame(s) or conceal."""
        for frame in decision.skipped:  # decoded to keep the decoder's state, not played
            decoder.decode(torch.from_numpy(frame.codes)[None, :, None])
        if decision.frame is not None:
            self.concealer.received(decision.frame.codes)
            return decoder.decode(torch.from_numpy(decision.frame.codes)[None, :, None])[0].numpy()
        codes, gain = self.concealer.plan()
        if codes is None:
            return self.concealer.comfort_noise()
        return gain * decoder.decode(torch.from_numpy(codes)[None, :, None])[0].numpy()

    def _account(self, decision, now: float, index: int) -> None:
        if decision.frame is not None:
            self.stats.frames_played += 1
            self.stats.layers.append(decision.frame.layers)
            if self.capture_epoch is not None:
                played_at = now + self._epoch_offset
                self.stats.mouth_to_ear_ms.append(1000 * (played_at - (self.capture_epoch + index * self.frame_s)))
        self.stats.buffer_ms.append(self.playout.level_ms)
        self.receiver.status(self)

    async def _feedback(self) -> None:
        interval = self.receive_stats.interval()
        message = Feedback(
            highest_seq=max(0, self.receive_stats.extended_max), received=self.receive_stats.received,
            loss_fraction=min(1.0, interval.loss_fraction), jitter_ms=min(60_000.0, self.receive_stats.jitter_ms),
            buffer_ms=min(60_000.0, self.playout.level_ms), concealed_fraction=self.playout.stats.concealed_fraction,
        )
        try:
            await self.transport.send_control(dump_message(message))
        except TransportClosed:
            self._closed.set()


class Receiver:
    """Accepts calls on a websocket server; one call at a time, then the next."""

    def __init__(
        self, model: Codec, model_id: str, sink_factory: Callable[[], Sink], token: str = "",
        stats_json: Path | None = None, quiet: bool = True,
    ) -> None:
        self.model = model
        self.model_id = model_id
        self.sink_factory = sink_factory
        self.token = token
        self.stats_json = stats_json
        self.quiet = quiet
        self.calls: list[dict] = []
        self.call_ended = asyncio.Event()
        self.rejected: list[str] = []
        self._busy = asyncio.Lock()
        self._last_status = 0.0

    async def serve(self, host: str, port: int) -> Server:
        return await serve(self._handle, host, port, compression=None, max_size=MAX_MESSAGE_BYTES, ping_interval=5, ping_timeout=10)

    async def _handle(self, connection: ServerConnection) -> None:
        transport = WebSocketTransport(connection)
        try:
            first = await asyncio.wait_for(transport.recv(), timeout=5.0)
        except (TimeoutError, TransportClosed):
            return  # a caller that vanished mid-handshake
        hello = None
        if isinstance(first, str):
            try:
                parsed = parse_message(first)
                hello = parsed if isinstance(parsed, Hello) else None
            except MessageError:
                pass
        if hello is None:
            await self._refuse(transport, "expected a hello message first")
            return
        cfg = self.model.cfg
        answer = answer_hello(hello, self.model_id, cfg.sample_rate, cfg.frame_ms, cfg.n_quantizers, self.token)
        if isinstance(answer, Reject):
            await self._refuse(transport, answer.reason)
            return
        if self._busy.locked():
            await self._refuse(transport, "busy: another call is in progress")
            return
        async with self._busy:
            await transport.send_control(dump_message(answer))
            summary = await Call(self, transport, hello).run()
            self.calls.append(summary)
            if self.stats_json is not None:
                self.stats_json.write_text(json.dumps(summary, indent=1) + "\n")
            if not self.quiet:
                print(file=sys.stderr)
            self.call_ended.set()
        await transport.close("call ended")

    async def _refuse(self, transport: WebSocketTransport, reason: str) -> None:
        self.rejected.append(reason)
        log.warning("call refused: %s", reason)
        try:
            await transport.send_control(dump_message(Reject(reason=reason)))
        except TransportClosed:
            pass
        await transport.close(reason)

    def status(self, call: Call) -> None:
        """The live one-line status, at most twice a second."""
        if self.quiet:
            return
        now = time.monotonic()
        if now - self._last_status < 0.5:
            return
        self._last_status = now
        s = call.stats.summary(call.receive_stats, call.playout, call.frame_s)
        print(
            f"\r{s['packet_kbps']:5.1f} kbps  {s['layers_mean']:4.1f} layers  loss {100 * s['loss_fraction']:4.1f}%  "
            f"jitter {s['jitter_ms']:5.1f} ms  buffer {call.playout.level_ms:5.0f} ms  concealed {100 * s['concealed_fraction']:4.1f}%",
            end="", file=sys.stderr, flush=True,
        )
