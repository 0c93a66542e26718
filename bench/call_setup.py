"""Call set-up time and mouth-to-ear delay per transport: `python -m bench.call_setup`.

For each transport (WebRTC data channel, websocket) runs `ssvoip listen --once` and `ssvoip
call` as two processes on 127.0.0.1, a full-duplex call with the bundled sample one way and
the test clip the other, 6 kbps, and prints one JSON object per transport: set-up time (the
caller's connect + hello + offer/answer + data channel open, in ms), mouth-to-ear p50/p95 in
each direction (shared clock: the same machine), and each process's CPU % of one core.
`--repeat N` runs N calls per transport and reports the median set-up time.
"""

from __future__ import annotations

import argparse
import json
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from protocol.telemetry import CallerSummary, CallSummary

ROOT = Path(__file__).resolve().parents[1]
SAMPLE_A = ROOT / "codec" / "samples" / "speech.wav"
SAMPLE_B = ROOT / "tests" / "call" / "data" / "speech_b.wav"


def free_port() -> int:
    """A port on 127.0.0.1 for a server process to bind (port 0 bound, closed, its number handed on)."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def one_call(transport: str, kbps: float, tmp: Path) -> dict:
    port = free_port()
    listener = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "ssvoip",
            "listen",
            "--host",
            "127.0.0.1",
            "--port",
            str(port),
            "--once",
            "--quiet",
            "--force",
            "--input",
            str(SAMPLE_B),
            "--output",
            str(tmp / "l.wav"),
            "--stats-json",
            str(tmp / "l.json"),
            "--kbps",
            str(kbps),
        ],
        cwd=ROOT,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            try:
                socket.create_connection(("127.0.0.1", port), timeout=0.5).close()
                break
            except OSError:
                time.sleep(0.1)
        caller = subprocess.run(
            [
                sys.executable,
                "-m",
                "ssvoip",
                "call",
                f"ws://127.0.0.1:{port}",
                "--transport",
                transport,
                "--quiet",
                "--force",
                "--input",
                str(SAMPLE_A),
                "--output",
                str(tmp / "c.wav"),
                "--stats-json",
                str(tmp / "c.json"),
                "--kbps",
                str(kbps),
            ],
            cwd=ROOT,
            capture_output=True,
            text=True,
            timeout=120,
        )
        listener.communicate(timeout=60)
    finally:
        listener.kill()
    if caller.returncode or listener.returncode:
        raise SystemExit(f"call failed: {caller.stderr.strip()[-500:]}")
    # --stats-json appends a line a call: this call's is the last.
    c = CallerSummary.model_validate_json((tmp / "c.json").read_text().splitlines()[-1])
    lis = CallSummary.model_validate_json((tmp / "l.json").read_text().splitlines()[-1])
    if c.received is None or c.sent is None or lis.received is None:
        raise SystemExit("a side's statistics lack a half of the call")
    return {
        "transport": c.media,
        "setup_ms": c.setup_ms,
        "mouth_to_ear_ms_caller_to_listener": lis.received.mouth_to_ear_ms.model_dump(),
        "mouth_to_ear_ms_listener_to_caller": c.received.mouth_to_ear_ms.model_dump(),
        "rtt_ms": c.sent.rtt_ms,
        "caller_cpu_percent_of_one_core": c.received.cpu_percent_of_one_core,
        "listener_cpu_percent_of_one_core": lis.received.cpu_percent_of_one_core,
    }


def main() -> None:
    parser = argparse.ArgumentParser(prog="python -m bench.call_setup", description=__doc__)
    parser.add_argument("--kbps", type=float, default=6.0)
    parser.add_argument("--repeat", type=int, default=1)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        for transport in ("webrtc", "websocket"):
            runs = [one_call(transport, args.kbps, Path(tmp)) for _ in range(args.repeat)]
            result = runs[len(runs) // 2] | {"setup_ms": statistics.median(r["setup_ms"] for r in runs), "calls": len(runs)}
            print(json.dumps(result))


if __name__ == "__main__":
    main()
