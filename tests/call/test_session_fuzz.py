"""A live call under hostile input (issue #20): between valid media, a caller that has the token
sends random bytes, truncated and oversized packets, media with bad layer counts, feedback of
any value, wrong-typed and unknown control messages, on the websocket and on the WebRTC data
channel. The call must go on and end on the caller's bye, with every malformed input counted
and the valid media played. Bounded: a few examples a transport, each about a second of media."""

from __future__ import annotations

import asyncio
import json
import struct
from pathlib import Path

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from call.caller import dial
from call.listener import Listener
from codec.weights import load_model
from protocol.feedback import decode_feedback, is_feedback
from protocol.messages import Bye, MessageError, dump_message, parse_message
from protocol.packets import MAX_PACKET_BYTES, Frame, MediaPacket, PacketError, decode_packet, encode_packet
from receiver.sinks import WavSink
from transmitter.sender import Transmitter
from transmitter.sources import ToneSource
from transport.base import TransportClosed
from transport.webrtc import WebRTCTransport

pytestmark = pytest.mark.slow
VALID_FRAMES = 25  # half a second of media, one frame a packet, paced at 20 ms


@pytest.fixture(scope="module")
def model():
    return load_model()


json_values = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(-(2**70), 2**70),
    st.floats(allow_nan=True, allow_infinity=True),
    st.text(max_size=8),
    st.lists(st.integers(), max_size=2),
)
# Every kind but bye and eos, which end a call (or its incoming half) when well formed.
control = st.one_of(
    st.builds(
        lambda kind, fields: json.dumps({"type": kind} | fields),
        st.sampled_from(["hello", "accept", "offer", "answer", "start", "reject", "feedback", "layer_request", "nope", 7, None]),
        st.dictionaries(
            st.sampled_from(
                [
                    "protocol_version",
                    "model_id",
                    "max_layers",
                    "highest_seq",
                    "received",
                    "loss_fraction",
                    "jitter_ms",
                    "buffer_ms",
                    "concealed_fraction",
                    "queue_delay_ms",
                    "capture_epoch",
                    "sdp",
                    "reason",
                    "extra",
                ]
            ),
            json_values,
            max_size=6,
        ),
    ),
    st.text(max_size=300),
    st.sampled_from(["", "{", "[]", "null", "{" * 2000, '{"type": "bye", "reason": 7}', '{"type": "eos", "x": 1}']),
)
feedback = st.builds(
    lambda *fields: struct.pack(">BIIBHHHHIIH", 0xF1, *fields),
    *(
        st.sampled_from([0, 1, top - 1, top]) | st.integers(0, top)
        for top in (2**32 - 1, 2**32 - 1, 255, 2**16 - 1, 2**16 - 1, 2**16 - 1, 2**16 - 1, 2**32 - 1, 2**32 - 1, 2**16 - 1)
    ),
)
hostile = st.one_of(
    st.tuples(st.just("bytes"), st.binary(min_size=1, max_size=MAX_PACKET_BYTES)),
    st.tuples(st.just("truncated"), st.integers(1, 200)),
    st.tuples(st.just("oversized"), st.integers(MAX_PACKET_BYTES + 1, 3000)),
    st.tuples(st.just("layers"), st.sampled_from([0, 47, 255])),
    st.tuples(st.just("feedback"), feedback),
    st.tuples(st.just("short_feedback"), st.binary(max_size=40).map(lambda b: b"\xf1" + b).filter(lambda b: len(b) != 28)),
    st.tuples(st.just("control"), control),
)


class HostileCaller:
    """Valid media with hostile input between the packets; what the listener must count as malformed."""

    def __init__(self, model, transport) -> None:
        codec, _ = model
        self.cfg = codec.cfg
        self.transport = transport
        self.rng = np.random.default_rng(0)
        self.frame = 0
        self.malformed = 0  # inputs sent that no parser accepts
        self.sent = 0

    def valid(self, layers: int | None = None) -> bytes:
        layers = layers or int(self.rng.integers(1, 9))
        codes = self.rng.integers(0, 1 << self.cfg.bits_per_code, layers).astype(np.int64)
        packet = MediaPacket(seq=self.frame % 65536, timestamp=self.frame * self.cfg.hop, frames=(Frame(codes),))
        return encode_packet(packet, self.cfg.bits_per_code)

    def _is_malformed(self, data: bytes | str) -> bool:
        try:
            if isinstance(data, str):
                parse_message(data)
            elif is_feedback(data):
                decode_feedback(data)
            else:
                decode_packet(data, self.cfg.bits_per_code, self.cfg.n_quantizers)
        except (PacketError, MessageError):
            return True
        return False

    async def send(self, data: bytes | str) -> None:
        if isinstance(data, str):
            await self.transport.send_control(data)
        elif not await self.transport.send_media(data):  # the path backed up: not sent, not counted
            return
        self.sent += 1
        self.malformed += self._is_malformed(data)

    async def hostile(self, action: tuple) -> None:
        kind, arg = action
        if kind == "truncated":
            whole = self.valid(46)
            data: bytes | str = whole[: max(1, len(whole) - arg)]
        elif kind == "oversized":
            data = self.valid()[:8] + bytes(arg - 8)
        elif kind == "layers":
            whole = bytearray(self.valid())
            whole[8] = arg
            data = bytes(whole)
        else:
            data = arg
        await self.send(data)

    async def media(self) -> None:
        await self.send(self.valid())
        self.frame += 1


async def _drain(transport) -> None:
    try:
        while True:
            await transport.recv()
    except TransportClosed:
        return


async def _hostile_call(model, tmp: Path, media: str, actions: list[tuple]) -> tuple[dict, HostileCaller, str]:
    codec, model_id = model
    listener = Listener(
        codec, model_id, lambda: WavSink(tmp / "listener.wav", 16000), token="secret", source_factory=lambda: ToneSource(16000, 320, seconds=30)
    )
    server = await listener.serve("127.0.0.1", 0)
    url = f"ws://127.0.0.1:{server.sockets[0].getsockname()[1]}"
    async with server:
        dialed = await dial(url, Transmitter(codec, model_id, 6, token="secret"), media)
        caller = HostileCaller(model, dialed.transport)
        drain = asyncio.create_task(_drain(dialed.transport))
        loop = asyncio.get_running_loop()
        start = loop.time()
        try:
            per_frame = -(-len(actions) // VALID_FRAMES)  # hostile inputs between two valid packets
            for i in range(VALID_FRAMES):
                await caller.media()
                for action in actions[i * per_frame : (i + 1) * per_frame]:
                    await caller.hostile(action)
                await asyncio.sleep(max(0.0, start + (i + 1) * 0.02 - loop.time()))
            if isinstance(dialed.transport, WebRTCTransport):  # what is queued in SCTP arrives before the bye
                for _ in range(50):
                    if dialed.transport.channel.bufferedAmount == 0:
                        break
                    await asyncio.sleep(0.01)
                await asyncio.sleep(0.2)
            await dialed.transport.send_control(dump_message(Bye(reason="fuzz over")))
            await asyncio.wait_for(listener.call_ended.wait(), 10)
        finally:
            drain.cancel()
            await dialed.transport.close()
    return listener.calls[-1], caller, dialed.media_path


@pytest.mark.parametrize("media", ["websocket", "webrtc"])
def test_a_call_under_hostile_input_ends_on_bye_with_its_statistics(model, tmp_path: Path, media: str) -> None:
    @settings(max_examples=4, deadline=None, suppress_health_check=list(HealthCheck))
    @given(actions=st.lists(hostile, min_size=5, max_size=60))
    def check(actions: list[tuple]) -> None:
        summary, caller, path = asyncio.run(asyncio.wait_for(_hostile_call(model, tmp_path, media, actions), 30))
        assert path == media
        assert summary.ended_by == "the other side hung up (fuzz over)", summary
        received = summary.received
        assert received.malformed == caller.malformed, (received, caller.malformed)
        assert received.frames_received >= VALID_FRAMES // 2 and received.frames_played > 0, received
        assert summary.sent.frames > 0 and summary.media_path.received[media] >= VALID_FRAMES // 2

    check()
