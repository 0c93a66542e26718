"""The sending end: source -> streaming encoder -> packets -> transport, feedback back."""

from __future__ import annotations

import asyncio
import logging
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass

import numpy as np

from codec.model import Codec
from codec.streaming import StreamingEncoder
from protocol.messages import (
    PROTOCOL_VERSION, Accept, Bye, Feedback, Hello, LayerRequest, MessageError, Reject, Start, dump_message, parse_message,
)
from protocol.packets import Frame, MediaPacket, encode_packet
from transport.base import Transport, TransportClosed

log = logging.getLogger(__name__)
QUIET_RMS = 10 ** (-45 / 20)  # frames below -45 dBFS are marked quiet: the receiver may drop them


class CallRefused(Exception):
    """The other side rejected the call; the message is its reason."""


@dataclass
class SendStats:
    frames: int = 0
    sent: int = 0
    skipped: int = 0  # frames not sent because the link was backed up
    bytes: int = 0
    last_feedback: Feedback | None = None
    feedback_count: int = 0
    remote_max_layers: int | None = None
    cpu_seconds: float = 0.0  # process CPU time while streaming (all threads)
    wall_seconds: float = 0.0


class Transmitter:
    def __init__(self, model: Codec, model_id: str, layers: int, token: str = "", denoise: bool = False) -> None:
        self.model = model
        self.model_id = model_id
        self.cfg = model.cfg
        self.layers = layers
        self.token = token
        self.denoise = denoise
        self.stats = SendStats()
        self._executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix="encoder")

    async def handshake(self, transport: Transport) -> Accept:
        hello = Hello(
            protocol_version=PROTOCOL_VERSION, model_id=self.model_id, sample_rate=self.cfg.sample_rate,
            frame_ms=self.cfg.frame_ms, max_layers=self.cfg.n_quantizers, token=self.token,
        )
        await transport.send_control(dump_message(hello))
        try:
            reply = await asyncio.wait_for(transport.recv(), timeout=5.0)
        except TimeoutError:
            raise CallRefused("no answer to hello within 5 s") from None
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

    async def _read_control(self, transport: Transport) -> None:
        while True:
            try:
                message = await transport.recv()
            except TransportClosed:
                return
            if not isinstance(message, str):
                continue
            try:
                parsed = parse_message(message)
            except MessageError as exc:
                log.debug("dropped control message: %s", exc)
                continue
            if isinstance(parsed, Feedback):
                self.stats.last_feedback = parsed
                self.stats.feedback_count += 1
            elif isinstance(parsed, LayerRequest):
                self.stats.remote_max_layers = parsed.max_layers
            elif isinstance(parsed, Bye):
                return

    async def run(self, transport: Transport, source) -> SendStats:
        """Stream `source` (an async iterator of frames) until it ends, then say bye."""
        loop = asyncio.get_running_loop()
        await self.handshake(transport)
        reader = asyncio.create_task(self._read_control(transport))
        cpu, wall = time.process_time(), time.monotonic()
        hop = self.cfg.hop
        try:
            with StreamingEncoder(self.model) as encoder:
                # The first call is slow (lazy set-up): pay it before capture starts, so that
                # the first frames do not leave in a burst that the receiver must buffer.
                await loop.run_in_executor(self._executor, self._encode, encoder, np.zeros(hop, np.float32), self.layers)
                encoder.reset()
                source.start_at = loop.time()  # frame 0's capture starts now
                await transport.send_control(dump_message(Start(capture_epoch=time.time())))
                async for frame in source:
                    layers = min(self.layers, self.stats.remote_max_layers or self.layers)
                    codes = await loop.run_in_executor(self._executor, self._encode, encoder, frame, layers)
                    quiet = float(np.sqrt(np.mean(np.square(frame)))) < QUIET_RMS
                    packet = MediaPacket(
                        seq=self.stats.frames, timestamp=self.stats.frames * hop, frames=(Frame(codes),),
                        denoise=self.denoise, talkspurt=self.stats.frames == 0, quiet=quiet,
                    )
                    data = encode_packet(packet, self.cfg.bits_per_code)
                    self.stats.frames += 1
                    if await transport.send_media(data):
                        self.stats.sent += 1
                        self.stats.bytes += len(data)
                    else:
                        self.stats.skipped += 1
            await transport.send_control(dump_message(Bye(reason="end of input")))
        finally:
            reader.cancel()
            self.stats.cpu_seconds = time.process_time() - cpu
            self.stats.wall_seconds = time.monotonic() - wall
        return self.stats

    def _encode(self, encoder: StreamingEncoder, frame: np.ndarray, layers: int) -> np.ndarray:
        return encoder.encode(frame, layers, float(self.denoise))[0, :, 0].numpy()
