"""Full-duplex calls between two processes (`ssvoip listen` and `ssvoip call`) on loopback.

Each direction carries a different speech file; each side's received WAV must match the
offline codec round trip of what the other side sent (PESQ-WB within 0.15).
"""

from __future__ import annotations

import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest
import soundfile as sf

from codec.audio_io import load_audio
from codec.train.evaluate import codec_roundtrip, metrics
from codec.weights import load_model
from protocol.telemetry import CallerSummary, CallSummary
from tests.alignment import align_framewise, played_only
from tests.ports import free_port
from tests.processes import listen_command

ROOT = Path(__file__).resolve().parents[2]
SAMPLE_A = ROOT / "codec" / "samples" / "speech.wav"
SAMPLE_B = ROOT / "tests" / "call" / "data" / "speech_b.wav"


def _call(tmp: Path, caller_args: list[str], listener_args: list[str] = ()) -> tuple[CallerSummary, CallSummary]:
    port = free_port()
    listener = subprocess.Popen(
        listen_command(
            port,
            "--once",
            "--quiet",
            "--input",
            str(SAMPLE_B),
            "--output",
            str(tmp / "at_listener.wav"),
            "--stats-json",
            str(tmp / "listener.json"),
            *listener_args,
        ),
        cwd=ROOT,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:  # wait for the model to load and the port to open
            try:
                socket.create_connection(("127.0.0.1", port), timeout=0.5).close()
                break
            except OSError:
                time.sleep(0.2)
        caller = subprocess.run(
            [
                sys.executable,
                "-m",
                "ssvoip",
                "call",
                f"ws://127.0.0.1:{port}",
                "--quiet",
                "--input",
                str(SAMPLE_A),
                "--output",
                str(tmp / "at_caller.wav"),
                "--stats-json",
                str(tmp / "caller.json"),
                *caller_args,
            ],
            cwd=ROOT,
            capture_output=True,
            text=True,
            timeout=120,
        )
        _, listener_err = listener.communicate(timeout=60)
    finally:
        listener.kill()
    assert caller.returncode == 0, caller.stderr[-2000:]
    assert listener.returncode == 0, listener_err[-2000:]
    return CallerSummary.model_validate_json((tmp / "caller.json").read_text()), CallSummary.model_validate_json((tmp / "listener.json").read_text())


def _pesq_gap(sent: Path, received: Path) -> float:
    """PESQ-WB of what was played against the offline round trip's, over the same frames (a
    frame the playout skipped to win delay back is left out of both). Each skip still leaves a
    splice that the offline pass has not; PESQ-WB charged up to 0.1 for one (2 skips: 0.20 in a
    fresh clone's CI run), so each skip adds 0.1 to what the gap may be."""
    model, model_id = load_model()
    audio, _ = load_audio(sent, model.cfg.sample_rate)
    offline = codec_roundtrip(model, model_id, audio, 6.0)
    got, _ = sf.read(received, dtype="float32")
    aligned, unplayed = align_framewise(got, offline)
    assert len(unplayed) <= 5
    audio, aligned, offline = played_only(unplayed, model.cfg.hop, audio, aligned, offline)
    return abs(metrics(audio, aligned)["pesq_wb"] - metrics(audio, offline)["pesq_wb"]) - 0.1 * len(unplayed)


@pytest.mark.slow
@pytest.mark.parametrize("transport", ["webrtc", "websocket"])
def test_full_duplex_call_between_two_processes(tmp_path: Path, transport: str) -> None:
    caller, listener = _call(tmp_path, ["--transport", transport])
    assert caller.media == transport
    frames_a = -(-load_audio(SAMPLE_A, 16000)[0].size // 320)
    frames_b = -(-load_audio(SAMPLE_B, 16000)[0].size // 320)
    for side, other, frames_in in ((caller, listener, frames_b), (listener, caller, frames_a)):
        got = side.received
        # Nothing lost on a clean link; nearly all of it played. Margins, not exact counts: the
        # call ends when the caller's input does, and on a busy machine the listener may start
        # its stream late enough that its last frames are cut (a hundred-odd ms in flight at
        # the hang-up too); a stalled loop may skip or conceal a frame or two for delay.
        sent = other.sent.frames
        assert 0.85 * frames_in <= sent <= frames_in  # the call lasted (nearly) all of this input
        assert got.loss_fraction == 0.0 and got.malformed == 0
        assert sent - 5 <= got.frames_played + got.skipped_for_delay <= sent
        assert got.frames_played >= 0.95 * sent and got.concealed_fraction <= 0.01
        # Every packet came over this transport (a call starts at 2-3 frames a packet).
        assert side.media_path.received[transport] == other.sent.sent >= frames_in / 3
        assert side.sent.rtt_ms is not None
    assert caller.setup_ms < 5000
    assert _pesq_gap(SAMPLE_A, tmp_path / "at_listener.wav") <= 0.15
    assert _pesq_gap(SAMPLE_B, tmp_path / "at_caller.wav") <= 0.15


@pytest.mark.slow
def test_webrtc_call_survives_ten_percent_loss_below_aiortc(tmp_path: Path) -> None:
    caller, listener = _call(tmp_path, ["--transport", "webrtc", "--inject-loss", "0.12"])
    assert caller.media == "webrtc" and caller.dropped_datagrams > 0
    got = listener.received  # the direction whose datagrams were dropped
    assert 0.05 <= got.loss_fraction <= 0.25  # reported what it saw
    # and repaired it: redundant copies stood in for lost frames, and what was concealed is
    # less than what was lost (12 % loss once left 4-6 % concealed; dense protection, ~1 %)
    assert got.redundant_played > 0 and got.concealed_fraction < got.loss_fraction
    assert got.frames_played > 0.7 * caller.sent.frames  # the call kept going to the end
    assert listener.ended_by and caller.ended_by
