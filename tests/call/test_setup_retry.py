"""Call set-up: connecting is retried (a listener that is not up yet, a connection attempt lost
on the way), a hello is never sent twice, and a failure names its step (issue 20, break 9)."""

from __future__ import annotations

import asyncio
import threading
from pathlib import Path

import pytest
from websockets.asyncio.server import serve
from websockets.sync.server import serve as serve_sync

import call.caller
import transmitter.sender
from call.caller import SetupFailed, dial
from call.listener import Listener
from codec.weights import load_model
from netsim.relay import TcpRelay
from protocol.messages import Reject, dump_message
from receiver.sinks import WavSink
from ssvoip.calls import main
from transmitter.sender import Transmitter
from transmitter.sources import ToneSource
from tests.ports import free_port


@pytest.fixture(scope="module")
def model():
    return load_model()


def _listener(model, tmp: Path) -> Listener:
    codec, model_id = model
    return Listener(codec, model_id, lambda: WavSink(tmp / "rx.wav", 16000), source_factory=lambda: ToneSource(16000, 320, seconds=0.2))


async def test_a_listener_that_starts_late_is_still_reached(model, tmp_path: Path) -> None:
    """The caller starts 1.5 s before the listener accepts (a listener still loading its
    model): the connection is refused at first, and the caller keeps trying."""
    codec, model_id = model
    port = free_port()
    dialing = asyncio.create_task(dial(f"ws://127.0.0.1:{port}", Transmitter(codec, model_id, layers=6), "websocket"))
    await asyncio.sleep(1.5)
    assert not dialing.done()
    server = await _listener(model, tmp_path).serve("127.0.0.1", port)
    async with server:
        dialed = await asyncio.wait_for(dialing, 10)
        assert dialed.media_path == "websocket"
        await dialed.transport.close()


async def test_a_connection_attempt_lost_on_the_way_is_retried(model, tmp_path: Path) -> None:
    """The relay in front of the listener closes the first connection unanswered (a lost
    upgrade): the caller connects on its next attempt."""
    codec, model_id = model
    server = await _listener(model, tmp_path).serve("127.0.0.1", 0)
    async with server:
        relay = TcpRelay(("127.0.0.1", 0), ("127.0.0.1", server.sockets[0].getsockname()[1]))
        relay.drop_connections = 1
        await relay.start()
        try:
            dialed = await asyncio.wait_for(dial(f"ws://127.0.0.1:{relay.listen_address[1]}", Transmitter(codec, model_id, layers=6), "websocket"), 10)
            assert relay.dropped_connections == 1
            await dialed.transport.close()
        finally:
            await relay.close()


async def test_nobody_listening_fails_at_connect_within_its_deadline(model) -> None:
    codec, model_id = model
    loop = asyncio.get_running_loop()
    started = loop.time()
    with pytest.raises(SetupFailed) as failed:
        await dial(f"ws://127.0.0.1:{free_port()}", Transmitter(codec, model_id, layers=6), "websocket", connect_within=1.0)
    assert failed.value.step == "connect" and "attempts" in failed.value.reason
    assert loop.time() - started < 3


async def test_a_hello_without_an_answer_is_not_sent_again(model, monkeypatch: pytest.MonkeyPatch) -> None:
    """The listener may have accepted a hello whose answer was lost: a second hello (on a new
    connection) would find it busy. Set-up ends at "hello", after one connection and one hello."""
    codec, model_id = model
    monkeypatch.setattr(transmitter.sender, "HELLO_ANSWER_TIMEOUT_S", 0.5)
    hellos: list[str] = []

    async def silent(connection) -> None:
        async for message in connection:
            hellos.append(message)

    async with serve(silent, "127.0.0.1", 0) as server:
        url = f"ws://127.0.0.1:{server.sockets[0].getsockname()[1]}"
        with pytest.raises(SetupFailed, match="no answer to hello within 0.5 s") as failed:
            await dial(url, Transmitter(codec, model_id, layers=6), "webrtc")
    assert failed.value.step == "hello"
    assert len(hellos) == 1


def _one_line(capsys: pytest.CaptureFixture, argv: list[str]) -> str:
    assert main("call", argv) == 2
    err = capsys.readouterr().err
    assert "Traceback" not in err and len(err.strip().splitlines()) == 1, err
    return err.strip()


def test_the_error_line_names_the_step(capsys: pytest.CaptureFixture, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(call.caller, "CONNECT_WITHIN_S", 1.0)
    out = ["--quiet", "--input", "tone", "--output", str(tmp_path / "x.wav")]
    line = _one_line(capsys, [f"ws://127.0.0.1:{free_port()}", *out])
    assert line.startswith("error: call set-up failed at connect: cannot connect to ws://127.0.0.1:"), line

    def refuse(connection) -> None:
        connection.recv()
        connection.send(dump_message(Reject(reason="wrong token")))

    with serve_sync(refuse, "127.0.0.1", 0) as server:
        thread = threading.Thread(target=server.serve_forever, daemon=True)
        thread.start()
        try:
            line = _one_line(capsys, [f"ws://127.0.0.1:{server.socket.getsockname()[1]}", *out])
        finally:
            server.shutdown()
    assert line == "error: call set-up failed at hello: wrong token"
