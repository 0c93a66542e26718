"""A WebRTC call between two network namespaces, with kernel-level random loss (iptables) on
the caller -> listener direction: the call goes on, conceals, and reports the loss it saw.
Needs root, `ip netns`, veth and iptables (skipped with the reason otherwise)."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path

import pytest

from netsim.namespaces import NamespacePair, Side, support
from protocol.telemetry import CallerSummary, CallSummary

ROOT = Path(__file__).resolve().parents[2]
SAMPLE_A = ROOT / "codec" / "samples" / "speech.wav"
SAMPLE_B = ROOT / "tests" / "call" / "data" / "speech_b.wav"


@pytest.mark.slow
def test_webrtc_call_through_kernel_loss_between_namespaces(tmp_path: Path) -> None:
    why = support()
    if why is not None:
        pytest.skip(f"network namespaces unavailable: {why}")
    env = os.environ | {"PYTHONPATH": str(ROOT), "SSVOIP_TOKEN": "namespace-test"}  # listening beyond loopback needs one
    with NamespacePair() as pair:
        pair.impair("b->a", loss=0.10)  # what the caller (b) sends, the listener (a) loses 10 % of
        listener = _ssvoip(pair, "a", ["listen", "--host", pair.ip("a"), "--port", "8765", "--once", "--quiet"], SAMPLE_B, tmp_path / "a", env)
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:  # until the listener's port answers inside its namespace
            probe = pair.run(
                "b",
                [sys.executable, "-c", f"import socket; socket.create_connection(('{pair.ip('a')}', 8765), 1)"],
                stdout=subprocess.DEVNULL,
                stderr=subprocess.DEVNULL,
            )
            if probe.wait(timeout=10) == 0:
                break
            time.sleep(0.3)
        # 10 % loss can cost the DTLS/SCTP handshake a retransmission or two (1 s, then 2 s):
        # more than the default 5 s to open under a loaded CI machine.
        caller = _ssvoip(pair, "b", ["call", f"ws://{pair.ip('a')}:8765", "--quiet", "--webrtc-timeout", "20"], SAMPLE_A, tmp_path / "b", env)
        _, caller_err = caller.communicate(timeout=120)
        _, listener_err = listener.communicate(timeout=60)
        dropped = pair.counters("b->a")
    assert caller.returncode == 0, caller_err[-2000:]
    assert listener.returncode == 0, listener_err[-2000:]
    at_listener = CallSummary.model_validate_json((tmp_path / "a.json").read_text())
    at_caller = CallerSummary.model_validate_json((tmp_path / "b.json").read_text())
    assert at_caller.media == "webrtc"
    got = at_listener.received
    assert 0.03 <= got.loss_fraction <= 0.2, got  # the kernel dropped ~10 % of datagrams
    assert got.frames_played > 0.7 * at_caller.sent.frames
    assert dropped["loss_dropped"] > 0


def _ssvoip(pair: NamespacePair, side: Side, args: list[str], sample: Path, out: Path, env: dict[str, str]) -> subprocess.Popen[str]:
    """`ssvoip ARGS` inside `side`, sending `sample`; what it received and its stats go to `out`.wav and `out`.json."""
    stats = ["--input", str(sample), "--output", str(out.with_suffix(".wav")), "--stats-json", str(out.with_suffix(".json"))]
    return pair.run(side, [sys.executable, "-m", "ssvoip", *args, *stats], cwd=ROOT, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
