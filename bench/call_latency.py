"""Mouth-to-ear delay and CPU of a one-way call on loopback: `python -m bench.call_latency`.

Runs `python -m receiver` and `python -m transmitter` as two processes on 127.0.0.1 (the
bundled sample, paced in real time, 6 kbps by default) and prints one JSON object: the
receiver's mouth-to-ear p50/p95 (shared clock: the same machine), and each side's CPU time
during the call as a percentage of one core.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from bench.call_setup import free_port
from protocol.telemetry import CallSummary, SendSnapshot

ROOT = Path(__file__).resolve().parents[1]
SAMPLE = ROOT / "codec" / "samples" / "speech.wav"


def run(kbps: float) -> dict:
    port = free_port()
    with tempfile.TemporaryDirectory() as tmp:
        stats = Path(tmp) / "stats.json"
        receiver = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "receiver",
                "--listen",
                f"127.0.0.1:{port}",
                "--output",
                str(Path(tmp) / "rx.wav"),
                "--once",
                "--quiet",
                "--stats-json",
                str(stats),
            ],
            cwd=ROOT,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        time.sleep(4.0)  # model load
        sender = subprocess.run(
            [sys.executable, "-m", "transmitter", "--connect", f"ws://127.0.0.1:{port}", "--input", str(SAMPLE), "--kbps", str(kbps)],
            cwd=ROOT,
            capture_output=True,
            text=True,
            timeout=120,
        )
        receiver.communicate(timeout=60)
        if sender.returncode or receiver.returncode:
            raise SystemExit(f"call failed: {sender.stderr.strip()[-500:]}")
        rx = CallSummary.model_validate_json(stats.read_text()).received
    tx = SendSnapshot.model_validate_json(sender.stdout.strip().splitlines()[-1])
    if rx is None:
        raise SystemExit("the receiver's statistics have no incoming half")
    return {
        "kbps": kbps,
        "frames": tx.frames,
        "mouth_to_ear_ms": rx.mouth_to_ear_ms.model_dump(),
        "buffer_ms_mean": rx.buffer_ms_mean,
        "concealed_fraction": rx.concealed_fraction,
        "transmitter_cpu_percent_of_one_core": tx.cpu_percent_of_one_core,
        "receiver_cpu_percent_of_one_core": rx.cpu_percent_of_one_core,
    }


if __name__ == "__main__":
    parser = argparse.ArgumentParser(prog="python -m bench.call_latency", description=__doc__)
    parser.add_argument("--kbps", type=float, default=6.0)
    print(json.dumps(run(parser.parse_args().kbps)))
