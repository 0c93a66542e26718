"""One direction's receiving half: packets in -> playout buffer -> decoder -> sink.

`on_media`, `on_start` and `end` are fed by whoever reads the connection (a one-way receiver or
a full-duplex call), as `protocol.call_state` decides; `play` wakes at the playout buffer's deadlines (the fastest recent
arrival of the next frame plus the target delay, never sooner than a frame after the last),
asks it what to play, decodes or conceals, writes to the sink, and sends feedback every
100 ms (and early when a queue builds: `protocol.feedback.FeedbackClock`). Malformed packets are counted and dropped; the stream goes on. Model calls run in
one worker thread, so the event loop never blocks on them.
"""

from __future__ import annotations

import asyncio
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Callable

import numpy as np

from codec.engine import DEFAULT_ENGINE, frame_decoder
from codec.weights import AnyCodec
from protocol.device_clock import DeviceClock
from protocol.feedback import FeedbackClock, encode_feedback
from protocol.messages import Feedback
from protocol.packets import PacketError, decode_packet
from protocol.playout import Action, Playout, PlayoutBuffer
from protocol.percentiles import Histogram, RunningMean
from protocol.stats import ReceiveStats
from protocol.telemetry import Percentiles, ReceiveSnapshot
from receiver.concealment import DEFAULT_CONCEALMENT, make_concealer
from receiver.playout_trace import PlayoutTrace
from receiver.sinks import Sink
from transport.base import Transport, TransportClosed

_POLL_S = 0.005  # before playout starts


@dataclass
class IncomingStats:
    frames_played: int = 0
    malformed: int = 0
    payload_bytes: int = 0
    # Per-frame figures as running statistics (constant memory, O(1) a frame; read twice a second).
    layers: RunningMean = field(default_factory=RunningMean)  # of the frames played
    buffer_ms: RunningMean = field(default_factory=RunningMean)  # after each frame, played or concealed
    # Capture to playout, whole call, 1 ms bins up to 10 s (beyond: the edge bucket).
    mouth_to_ear_ms: Histogram = field(default_factory=lambda: Histogram(0.0, 10_000.0, 1.0))
    ended_by: str = ""
    gap_frames: int = 0  # consecutive frames concealed so far
    longest_gap_frames: int = 0  # the longest run of concealed frames (no real audio)
    cpu_seconds: float = 0.0  # process CPU time spent while playing (all threads)
    wall_seconds: float = 0.0


class IncomingStream:
    def __init__(
        self,
        model: AnyCodec,
        model_id: str,
        sink: Sink,
        transport: Transport | None,
        engine: str = DEFAULT_ENGINE,
        on_frame: Callable[["IncomingStream"], None] | None = None,
        close_sink: bool = True,
        concealment: str = DEFAULT_CONCEALMENT,
    ) -> None:
        cfg = model.cfg
        self.cfg = cfg
        self.transport = transport  # for feedback; may be set after construction (before `play`)
        self.sink = sink
        self.frame_s = cfg.hop / cfg.sample_rate
        self.receive_stats = ReceiveStats(cfg.sample_rate)
        self.playout = PlayoutBuffer(cfg.hop, cfg.sample_rate)
        self.feedback_clock = FeedbackClock()
        self.concealer = make_concealer(concealment, cfg.hop, model)  # receiver.concealment: repeat | neural
        self.trace: PlayoutTrace | None = None  # set to record every playout decision (`ssvoip experiment --dump-trace`)
        self.stats = IncomingStats()
        self.device_clock = DeviceClock(self.frame_s)
        self.on_frame = on_frame  # called after each played frame (a status line)
        self.close_sink = close_sink  # False: the sink outlives this stream (a reconnecting caller)
        self.capture_epoch: float | None = None  # from the sender's start message
        self._decoder = frame_decoder(model, model_id, engine)
        self._ended = asyncio.Event()  # no more media will come (eos, bye or a closed link)
        self._executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix="decoder")
        loop = asyncio.get_running_loop()
        self._loop = loop
        self._epoch_offset = time.time() - loop.time()  # loop clock -> wall clock
        self._highest_arrival = 0.0  # when the packet with the highest sequence number arrived

    # ---- input (called by the connection's reader) ------------------------------------------------
    def on_media(self, data: bytes, now: float) -> None:
        try:
            packet = decode_packet(data, self.cfg.bits_per_code, self.cfg.n_quantizers)
        except PacketError:
            self.stats.malformed += 1
            return
        before = self.receive_stats.extended_max
        if not self.receive_stats.on_packet(packet.seq, packet.timestamp, now):
            return
        if self.receive_stats.extended_max != before:
            self._highest_arrival = now
        self.stats.payload_bytes += len(data)
        hop = self.cfg.hop
        n = len(packet.frames)
        self.feedback_clock.on_packing(now, n)
        for i, frame in enumerate(packet.frames):
            self.playout.push(packet.timestamp + i * hop, frame, now, quiet=packet.quiet, packet_frames=n, position=i)
        for red in packet.redundancy:
            self.playout.push(packet.timestamp - red.back * hop, red.frame, now, redundant=True)

    def on_start(self, capture_epoch: float | None) -> None:
        """The sender's start: when its frame 0 was captured (wall clock), for mouth-to-ear."""
        self.capture_epoch = capture_epoch

    def end(self, why: str) -> None:
        """No more media will come: play out what is buffered, then `play` returns."""
        self.stats.ended_by = self.stats.ended_by or why
        self.playout.draining = True
        self._ended.set()

    @property
    def finished(self) -> bool:
        return self._ended.is_set() and self.playout.buffered_frames == 0

    # ---- output ----------------------------------------------------------------------------------
    async def play(self) -> None:
        """Pop at the playout buffer's deadlines, never sooner than one frame after the last pop."""
        loop = self._loop
        cpu, wall = time.process_time(), time.monotonic()
        cursor = loop.time()  # when the audio written so far has finished playing
        self.feedback_clock.start(cursor)
        try:
            while not self.finished:
                due = self.playout.next_deadline()
                wake = cursor if due is None else max(cursor, due)
                if self._ended.is_set() and due is None:
                    break  # ended before any media came
                await asyncio.sleep(max(0.0, wake - loop.time()))
                now = loop.time()
                decision = self.playout.pop(now)
                if decision.action is Action.WAIT:
                    cursor = now + _POLL_S
                else:
                    audio = await loop.run_in_executor(self._executor, self._render, decision)
                    self.sink.write(audio)
                    self._account(decision, loop.time())
                    cursor = max(cursor + self.frame_s, now) + self.device_clock.extra_wait(getattr(self.sink, "queued", None))
                queue_ms = self.playout.queue_delay_ms
                if self.feedback_clock.due(now, queue_ms):
                    self.feedback_clock.sent(now, queue_ms)
                    await self._feedback(now)
        finally:
            self.stats.cpu_seconds = time.process_time() - cpu
            self.stats.wall_seconds = time.monotonic() - wall

    def close(self) -> None:
        if self.close_sink:
            self.sink.close()
        self._executor.shutdown(wait=True)
        self._decoder.close()

    def _render(self, decision: Playout) -> np.ndarray:
        """Runs in the worker thread: decode the frame(s) or conceal."""
        if self.trace is not None:
            self.trace.add(decision)
        for frame in decision.skipped:  # decoded to keep the decoder's (and concealer's) state, not played
            self.concealer.received(self._decoder, frame.codes)
        if decision.frame is not None:
            return self.concealer.received(self._decoder, decision.frame.codes)
        following = decision.following
        if following is None:
            return self.concealer.missing(self._decoder)
        return self.concealer.missing(self._decoder, following.codes, decision.following_distance)

    def _account(self, decision: Playout, now: float) -> None:
        if decision.frame is None:
            self.stats.gap_frames += 1
            self.stats.longest_gap_frames = max(self.stats.longest_gap_frames, self.stats.gap_frames)
        else:
            self.stats.gap_frames = 0
            self.stats.frames_played += 1
            self.stats.layers.add(decision.frame.layers)
            if self.capture_epoch is not None and decision.index is not None:
                played_at = now + self._epoch_offset
                self.stats.mouth_to_ear_ms.add(1000 * (played_at - (self.capture_epoch + decision.index * self.frame_s)))
        self.stats.buffer_ms.add(self.playout.level_ms)
        if self.on_frame is not None:
            self.on_frame(self)

    async def _feedback(self, now: float) -> None:
        stats = self.receive_stats
        if stats.received == 0 or self.transport is None:
            return
        interval = stats.interval()
        message = Feedback(
            highest_seq=max(0, stats.extended_max),
            received=stats.received,
            loss_fraction=min(1.0, interval.loss_fraction),
            jitter_ms=min(60_000.0, stats.jitter_ms),
            hold_ms=min(60_000.0, max(0.0, 1000 * (now - self._highest_arrival))),
            buffer_ms=min(60_000.0, self.playout.level_ms),
            concealed_fraction=self.playout.stats.concealed_fraction,
            received_bytes=self.stats.payload_bytes,
            recovered=self.playout.stats.redundant,
            queue_delay_ms=min(60_000.0, self.playout.queue_delay_ms),
        )
        try:
            await self.transport.send_media(encode_feedback(message))  # binary, on the media path
        except TransportClosed:
            self.end("link closed")

    # ---- statistics ------------------------------------------------------------------------------
    def snapshot(self) -> ReceiveSnapshot:
        """This half's statistics so far (O(1): cheap enough for a status line)."""
        s, receive, playout = self.stats, self.receive_stats, self.playout

        def pct(q: float) -> float | None:
            value = s.mouth_to_ear_ms.percentile(q)
            return None if value is None else round(value, 1)

        def mean(running: RunningMean, digits: int) -> float:
            return round(running.mean or 0.0, digits)

        seconds = max(self.frame_s, s.frames_played * self.frame_s)
        return ReceiveSnapshot(
            frames_played=s.frames_played,
            frames_received=receive.received,
            loss_fraction=round(max(0, receive.lost) / receive.expected, 4) if receive.expected else 0.0,
            jitter_ms=round(receive.jitter_ms, 2),
            concealed_fraction=round(playout.stats.concealed_fraction, 4),
            concealed=playout.stats.concealed,
            expanded=playout.stats.expanded,
            longest_gap_ms=round(1000 * s.longest_gap_frames * self.frame_s),
            redundant_played=playout.stats.redundant,
            late=playout.stats.late,
            duplicates=playout.stats.duplicate,
            out_of_order_discarded=receive.out_of_order_discarded,
            skipped_for_delay=playout.stats.skipped,
            skipped_speech=playout.stats.skipped_speech,
            flushed_for_delay=playout.stats.flushed,
            jumped=playout.stats.jumped,
            jumped_ahead=playout.stats.jumped_ahead,
            timeline_resets=playout.stats.resets,
            dropped_frames=playout.stats.dropped,
            sink_dropped=self.sink.dropped,
            sink_underruns=self.sink.underruns,
            device_waits=self.device_clock.waits,
            malformed=s.malformed,
            early_feedback=self.feedback_clock.early_reports,
            packet_kbps=round(8 * s.payload_bytes / seconds / 1000, 2),
            layers_mean=mean(s.layers, 2),
            buffer_ms_mean=mean(s.buffer_ms, 1),
            target_delay_ms=round(playout.target_ms, 1),
            mouth_to_ear_ms=Percentiles(p50=pct(50), p95=pct(95)),
            ended_by=s.ended_by,
            cpu_percent_of_one_core=round(100 * s.cpu_seconds / s.wall_seconds, 1) if s.wall_seconds else None,
        )
