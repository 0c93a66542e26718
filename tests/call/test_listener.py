"""The listener and the caller in one process: refusals, fallbacks, hang-ups, the next call."""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest

from call.caller import dial
from call.listener import Listener
from call.session import CallSession
from codec.weights import load_model
from protocol.messages import PROTOCOL_VERSION, Hello, Offer, dump_message, parse_message
from protocol.telemetry import CallerSummary
from receiver.incoming import IncomingStream
from receiver.sinks import WavSink
from transmitter.sender import CallRefused, Transmitter
from transmitter.sources import ToneSource
from transport.webrtc import WebRTCTransport
from transport.websocket import WebSocketTransport


@pytest.fixture(scope="module")
def model():
    return load_model()


async def _listening(model, tmp: Path, **kwargs) -> tuple[Listener, object, str]:
    codec, model_id = model
    counter = iter(range(100))
    listener = Listener(
        codec, model_id, lambda: WavSink(tmp / f"rx{next(counter)}.wav", 16000), source_factory=lambda: ToneSource(16000, 320, seconds=0.6, hz=300), **kwargs
    )
    server = await listener.serve("127.0.0.1", 0)
    return listener, server, f"ws://127.0.0.1:{server.sockets[0].getsockname()[1]}"


async def _one_call(model, url: str, tmp: Path, media: str = "webrtc", token: str = "", seconds: float = 0.6) -> CallerSummary:
    codec, model_id = model
    tx = Transmitter(codec, model_id, layers=6, token=token)
    incoming = IncomingStream(codec, model_id, WavSink(tmp / "caller.wav", 16000), None)
    started = asyncio.get_running_loop().time()
    dialed = await dial(url, tx, media)
    setup_ms = 1000 * (asyncio.get_running_loop().time() - started)
    incoming.transport = dialed.transport
    try:
        summary = await CallSession(dialed.transport, tx, ToneSource(16000, 320, seconds=seconds), incoming).run()
    finally:
        await dialed.transport.close()
    return CallerSummary(**dict(summary), media=dialed.media_path, setup_ms=setup_ms)


async def test_wrong_token_protocol_and_model_are_refused_on_both_sides(model, tmp_path: Path) -> None:
    codec, model_id = model
    listener, server, url = await _listening(model, tmp_path, token="right")
    async with server:
        with pytest.raises(CallRefused, match="wrong token"):
            await dial(url, Transmitter(codec, model_id, layers=6, token="wrong"))
        for hello, reason in (
            (Hello(protocol_version=PROTOCOL_VERSION + 1, model_id=model_id, sample_rate=16000, frame_ms=20, max_layers=24, token="right"), "protocol version"),
            (Hello(protocol_version=PROTOCOL_VERSION, model_id="other-model", sample_rate=16000, frame_ms=20, max_layers=24, token="right"), "model mismatch"),
        ):
            ws = await WebSocketTransport.connect(url)
            await ws.send_control(dump_message(hello))
            reply = parse_message(await ws.recv())
            assert reply.type == "reject" and reason in reply.reason
            await ws.close()
    assert listener.rejected[0] == "wrong token"
    assert "protocol version" in listener.rejected[1] and "model mismatch" in listener.rejected[2]


async def test_caller_vanishing_mid_handshake_leaves_the_listener_answering(model, tmp_path: Path) -> None:
    codec, model_id = model
    listener, server, url = await _listening(model, tmp_path)
    async with server:
        ws = await WebSocketTransport.connect(url)
        await ws.send_control(dump_message(Transmitter(codec, model_id, 6).hello("webrtc")))
        assert parse_message(await ws.recv()).type == "accept"
        await ws.close()  # gone before the offer
        ws = await WebSocketTransport.connect(url)
        await ws.send_control(dump_message(Transmitter(codec, model_id, 6).hello("webrtc")))
        assert parse_message(await ws.recv()).type == "accept"
        await ws.send_control(dump_message(Offer(sdp="v=0\r\nthis is not a session description\r\n")))
        assert parse_message(await ws.recv()).type == "answer"
        await ws.close()  # gone before the data channel opened
        await asyncio.wait_for(listener.call_ended.wait(), 5)
        summary = await _one_call(model, url, tmp_path)
    assert summary.media == "webrtc" and summary.received.frames_played > 0


async def test_webrtc_off_falls_back_to_the_websocket(model, tmp_path: Path) -> None:
    listener, server, url = await _listening(model, tmp_path, webrtc=False)
    async with server:
        summary = await _one_call(model, url, tmp_path)
    assert summary.media == "websocket"
    assert summary.media_path.received["websocket"] == summary.received.frames_received > 0
    # 0.6 s of tone: 30 frames, nearly all received and played (margins, not exact counts: on a
    # busy machine the sender may skip a frame on a backlog, the playout loop skip or conceal one)
    received = listener.calls[0].received
    assert 28 <= received.frames_received <= 30 and 27 <= received.frames_played <= 30
    assert received.loss_fraction == 0.0


async def test_hang_up_says_bye_and_the_listener_takes_the_next_call(model, tmp_path: Path) -> None:
    codec, model_id = model
    listener, server, url = await _listening(model, tmp_path)
    async with server:
        tx = Transmitter(codec, model_id, layers=6)
        dialed = await dial(url, tx, "webrtc")
        assert isinstance(dialed.transport, WebRTCTransport)
        incoming = IncomingStream(codec, model_id, WavSink(tmp_path / "c.wav", 16000), dialed.transport)
        session = CallSession(dialed.transport, tx, ToneSource(16000, 320, seconds=30), incoming)
        asyncio.get_running_loop().call_later(1.0, session.hang_up)
        summary = await asyncio.wait_for(session.run(), 10)
        await dialed.transport.close()
        assert summary.ended_by == "hang-up"
        await asyncio.wait_for(listener.call_ended.wait(), 5)
        assert listener.calls[0].ended_by == "the other side hung up (hang-up)"
        second = await _one_call(model, url, tmp_path)  # the listener is free again
    assert second.received.frames_played > 0 and len(listener.calls) == 2


async def test_a_listener_in_a_call_refuses_a_second_caller(model, tmp_path: Path) -> None:
    codec, model_id = model
    in_call = asyncio.Event()
    listener, server, url = await _listening(model, tmp_path, on_session=lambda session: session is not None and in_call.set())
    async with server:
        first = asyncio.create_task(_one_call(model, url, tmp_path, seconds=2.0))
        await asyncio.wait_for(in_call.wait(), 10)  # the first call holds the listener now
        with pytest.raises(CallRefused, match="busy"):
            await dial(url, Transmitter(codec, model_id, layers=6))
        await first


async def test_an_authenticated_caller_that_sends_nothing_does_not_hold_the_listener(model, tmp_path: Path) -> None:
    codec, model_id = model
    listener, server, url = await _listening(model, tmp_path, token="right", idle_timeout_s=0.5)
    async with server:
        ws = await WebSocketTransport.connect(url)
        await ws.send_control(dump_message(Transmitter(codec, model_id, 6, token="right").hello("websocket")))
        assert parse_message(await ws.recv()).type == "accept"
        await asyncio.wait_for(listener.call_ended.wait(), 5)  # and then nothing: not even a bye
        assert listener.calls[0].ended_by == "no media for 0.5 s"
        await ws.close()
        summary = await _one_call(model, url, tmp_path, media="websocket", token="right")  # answered, not "busy"
    assert summary.received.frames_played > 0


async def test_wrong_tokens_from_one_address_are_rate_limited(model, tmp_path: Path) -> None:
    codec, model_id = model
    listener, server, url = await _listening(model, tmp_path, token="right")
    async with server:
        for _ in range(5):
            with pytest.raises(CallRefused, match="wrong token"):
                await dial(url, Transmitter(codec, model_id, layers=6, token="guess"), "websocket")
        with pytest.raises(CallRefused, match="too many failed attempts"):  # even with the right one, for now
            await dial(url, Transmitter(codec, model_id, layers=6, token="right"), "websocket")


async def test_media_reaching_a_listener_whose_channel_opens_late_plays_as_it_comes(model, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """The caller's side of the data channel can open seconds before ours (our last SCTP
    handshake packet lost: a 3 s retransmission), and its media reaches us meanwhile. Held
    until our side opened, it arrived in one burst that the playout had to drop (a call
    through 10 % kernel loss once played 183 of 355 frames). Here our side "opens" 1.5 s
    late: the caller's frames must still play as they come, and our own sending waits for
    the channel (its rate plan depends on the path)."""
    answer = WebRTCTransport.answer.__func__  # type: ignore[attr-defined]

    async def answer_opening_late(cls, *args, **kwargs):
        rtc = await answer(cls, *args, **kwargs)
        if rtc is not None:
            opened = rtc.wait_open

            async def late(timeout: float = 10.0) -> bool:
                await asyncio.sleep(1.5)
                return await opened(timeout)

            rtc.wait_open = late
        return rtc

    monkeypatch.setattr(WebRTCTransport, "answer", classmethod(answer_opening_late))
    listener, server, url = await _listening(model, tmp_path)
    async with server:
        summary = await _one_call(model, url, tmp_path, seconds=3.0)
    assert summary.media == "webrtc"
    received = listener.calls[0].received
    assert received.frames_played >= 0.85 * summary.sent.frames, received  # not dropped as a late burst
    assert received.dropped_frames <= 10, received
    assert listener.calls[0].media_path.sent["webrtc"] > 0  # our half sent on the channel once it opened
