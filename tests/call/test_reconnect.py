"""A caller whose link drops mid-call redials and goes on; the listener takes the new call."""

from __future__ import annotations

import asyncio
import subprocess
import sys
from pathlib import Path

import pytest

from netsim.relay import TcpRelay
from protocol.telemetry import CallerSummary
from tests.ports import free_port, until
from tests.processes import listen_command

ROOT = Path(__file__).resolve().parents[2]
SAMPLE = ROOT / "codec" / "samples" / "speech.wav"


async def _port_open(port: int, timeout: float = 60.0) -> None:
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    while loop.time() < deadline:
        try:
            _, writer = await asyncio.open_connection("127.0.0.1", port)
            writer.close()
            return
        except OSError:
            await asyncio.sleep(0.2)
    raise AssertionError(f"nothing listens on {port}")


@pytest.mark.slow
async def test_caller_reconnects_after_the_link_drops(tmp_path: Path) -> None:
    port, relay_port = free_port(), free_port()
    listener = subprocess.Popen(
        listen_command(port, "--quiet", "--input", str(ROOT / "tests" / "call" / "data" / "speech_b.wav"), "--output", str(tmp_path / "at_listener.wav")),
        cwd=ROOT,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    relay = TcpRelay(("127.0.0.1", relay_port), ("127.0.0.1", port))
    try:
        await _port_open(port)
        await relay.start()
        caller = await asyncio.create_subprocess_exec(
            sys.executable,
            "-m",
            "ssvoip",
            "call",
            f"ws://127.0.0.1:{relay_port}",
            "--transport",
            "websocket",
            "--quiet",
            "--input",
            str(SAMPLE),
            "--output",
            str(tmp_path / "at_caller.wav"),
            "--stats-json",
            str(tmp_path / "caller.json"),
            cwd=ROOT,
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.PIPE,
        )
        # the call is up (bounded: a caller that failed to start must fail the test, not hang it)
        await until(lambda: bool(relay.connections) or caller.returncode is not None, timeout=60, what="the caller connected")
        assert relay.connections, "the caller exited before connecting"
        await asyncio.sleep(2.0)  # two seconds of call before the drop (the scenario, not synchronisation)
        await relay.close()  # the link drops
        await asyncio.sleep(1.0)
        relay = TcpRelay(("127.0.0.1", relay_port), ("127.0.0.1", port))
        await relay.start()  # and comes back
        _, err = await asyncio.wait_for(caller.communicate(), 90)
    finally:
        await relay.close()
        listener.kill()
        listener.communicate()
    assert caller.returncode == 0, err.decode()[-2000:]
    assert "reconnecting" in err.decode()
    summary = CallerSummary.model_validate_json((tmp_path / "caller.json").read_text())
    assert summary.reconnects == 1 and summary.ended_by != ""
    assert (tmp_path / "at_listener-2.wav").stat().st_size > 0  # the listener took the second call
