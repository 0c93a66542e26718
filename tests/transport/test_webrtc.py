"""The WebRTC transport on its own: offer/answer over a websocket, the data channel, fallback,
skipping when aiortc's queue backs up, and loss injected below it."""

from __future__ import annotations

import asyncio

from websockets.asyncio.server import serve

from protocol.messages import Offer, dump_message, parse_message
from transport.webrtc import HIGH_WATER_BYTES, WebRTCTransport
from tests.ports import until_steady
from transport.websocket import WebSocketTransport


async def _pair(answer_empty: bool = False) -> tuple[WebRTCTransport | None, WebRTCTransport | None, object]:
    """A caller and a callee WebRTCTransport over a websocket on loopback."""
    callee: asyncio.Future = asyncio.get_running_loop().create_future()

    async def handle(connection) -> None:
        signal = WebSocketTransport(connection)
        offer = parse_message(await signal.recv())
        assert isinstance(offer, Offer)
        if answer_empty:
            await signal.send_control('{"type": "answer", "sdp": ""}')
            callee.set_result(None)
        else:
            callee.set_result(await WebRTCTransport.answer(signal, offer))
        await connection.wait_closed()

    server = await serve(handle, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    caller = await WebRTCTransport.offer(await WebSocketTransport.connect(f"ws://127.0.0.1:{port}"))
    return caller, await callee, server


async def test_media_on_the_data_channel_control_on_the_websocket() -> None:
    caller, callee, server = await _pair()
    async with server:
        assert await caller.wait_open() and await callee.wait_open()
        assert caller.media_path == "webrtc"
        # a drop-tail bottleneck bounds a data channel's queue; TCP's must be drained (ratecontrol)
        assert caller.drain_above_ms is None and caller.signal.drain_above_ms is not None
        for i in range(20):
            assert await caller.send_media(bytes([i]) * 50)
        await caller.send_control(dump_message(Offer(sdp="x")))  # any control message
        got = [await asyncio.wait_for(callee.recv(), 2) for _ in range(21)]
        assert sorted(m[0] for m in got if isinstance(m, bytes)) == list(range(20))
        assert [m for m in got if isinstance(m, str)] == ['{"type":"offer","sdp":"x"}']
        assert callee.media_received == {"webrtc": 20, "websocket": 0}
        await caller.close()
        await callee.close()


async def test_an_empty_answer_means_no_webrtc() -> None:
    caller, _, server = await _pair(answer_empty=True)
    async with server:
        assert caller is None


async def test_frames_are_skipped_while_aiortc_holds_a_backlog() -> None:
    caller, callee, server = await _pair()
    async with server:
        await caller.wait_open()
        results = [await caller.send_media(b"\0" * 1000) for _ in range(50)]  # no awaits in between: a burst
        assert caller.channel.bufferedAmount <= HIGH_WATER_BYTES + 1000
        assert results.count(False) > 0 and results[:4] == [True] * 4
        await caller.close()
        await callee.close()


async def test_loss_injected_below_aiortc_drops_about_that_fraction() -> None:
    caller, callee, server = await _pair()
    async with server:
        await caller.wait_open()
        await callee.wait_open()
        caller.inject_loss(0.3, seed=1)
        for i in range(400):
            await caller.send_media(i.to_bytes(2, "big") * 20)
            await asyncio.sleep(0.002)
        # until the last datagrams that the loss spared are in (no new one for 0.3 s), not a guessed sleep
        await until_steady(lambda: callee.media_received["webrtc"], what="the datagrams received")
        received = callee.media_received["webrtc"]
        # Each data chunk travels in its own datagram (SACKs and forward-TSNs are dropped too).
        assert 0.2 * 400 <= 400 - received <= 0.42 * 400
        assert caller.dropped_datagrams > 100
        await caller.close()
        await callee.close()
