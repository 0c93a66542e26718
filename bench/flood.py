"""A hostile caller floods a listener: `python -m bench.flood` (issue #20).

Starts `ssvoip listen` as its own process on 127.0.0.1 (tone in, WAV out, a token from
$SSVOIP_TOKEN), calls it over the websocket with the token (a hostile caller that knows it),
and for `--seconds` (10) sends `--rate-x` (10) times a call's normal packet rates: a normal call
sends 50 media packets and 10 feedback reports a second, the flood 500 and 100, half of the
media well formed (a 10x-fast stream, packets with 8 redundant copies at jumping timestamps,
6-frame packets, replays, far jumps) and half not (random bytes, truncated, oversized, a wrong
version, trailing bytes, bad layer counts), half of the feedback well formed with random
(extreme) values and half of the wrong length, and 10 junk control messages a second (wrong
types, unknown types, not JSON). One second at the normal rates comes first, as a reference.

Measured, in 1-s windows: the listener process's CPU time (/proc, all threads) per packet
sent to it, its resident memory, and, once a window, how long a new caller waits for an
answer to its hello (expected: `reject` busy, since a call is up). Flat per-packet CPU means
no per-packet work grows with the flood's length. After the flood the caller says eos and
bye; the listener's statistics of the call (`--stats-json`) must show the call ended on that
bye with the junk counted as malformed; then one more caller must be accepted.

Prints a markdown table and one JSON object (also to `--json FILE`). About 15 s in all
(4 s of it the listener's start). Linux only (/proc).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import random
import secrets
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from codec.command_line import model_option
from codec.markdown_table import MarkdownTable
from protocol.messages import PROTOCOL_VERSION, Bye, EndOfStream, Hello, dump_message, parse_message
from protocol.packets import MAX_PACKET_BYTES, MAX_REDUNDANT, Frame, MediaPacket, RedundantFrame, encode_packet
from protocol.telemetry import CallSummary

ROOT = Path(__file__).resolve().parents[1]
NORMAL_MEDIA_PER_S = 50  # one 20-ms frame a packet
NORMAL_FEEDBACK_PER_S = 10  # a report every 100 ms
JUNK_CONTROL_PER_S = 10
TICK_S = 0.01
ANSWER_WITHIN_S = 1.0
_CLK_TCK = os.sysconf("SC_CLK_TCK") if hasattr(os, "sysconf") else 100


@dataclass
class Wire:
    """What a hello must say to the listener's model (from its description: no weights loaded)."""

    model_id: str
    sample_rate: int
    frame_ms: float
    hop: int
    max_layers: int
    bits: int

    @classmethod
    def for_model(cls, name: str | None) -> "Wire":
        from codec.weights import DEFAULT_MODEL, describe_model

        meta = describe_model(name or DEFAULT_MODEL)
        cfg = meta["config"]
        return cls(
            meta["model_id"],
            cfg["sample_rate"],
            1000 * cfg["hop"] / cfg["sample_rate"],
            cfg["hop"],
            cfg["n_quantizers"],
            int(cfg["codebook_size"]).bit_length() - 1,
        )

    def hello(self, token: str) -> str:
        return dump_message(
            Hello(
                protocol_version=PROTOCOL_VERSION,
                model_id=self.model_id,
                sample_rate=self.sample_rate,
                frame_ms=self.frame_ms,
                max_layers=self.max_layers,
                bits_per_stage=self.bits,
                token=token,
                media="websocket",
            )
        )


class Junk:
    """The flood's packets and messages, reproducible from a seed."""

    MEDIA_KINDS = ("stream", "random", "redundant_jump", "truncated", "multi", "oversized", "replay", "bad_version", "far", "trailing", "bad_layers")
    WELL_FORMED = {"stream", "redundant_jump", "multi", "replay", "far"}

    def __init__(self, wire: Wire, seed: int = 20) -> None:
        self.wire = wire
        self.rng = random.Random(seed)
        self.np = np.random.default_rng(seed)
        self.seq = 0
        self.frame = 0
        self.sent: list[bytes] = []
        self.i = 0  # media packets formed
        self.reports = 0  # feedback formed

    def _frame(self, layers: int | None = None) -> Frame:
        layers = layers or self.rng.randint(1, self.wire.max_layers)
        return Frame(self.np.integers(0, 1 << self.wire.bits, layers).astype(np.int64))

    def _packet(self, seq: int, timestamp: int, frames: int = 1, redundant: int = 0) -> bytes:
        packet = MediaPacket(
            seq=seq,
            timestamp=timestamp,
            frames=tuple(self._frame(self.rng.randint(1, 8)) for _ in range(frames)),
            redundancy=tuple(RedundantFrame(back=b + 1, frame=self._frame(self.rng.randint(1, 4))) for b in range(redundant)),
        )
        return encode_packet(packet, self.wire.bits)

    def stream(self) -> bytes:
        """The next packet of a well-formed stream (one frame a packet)."""
        data = self._packet(self.seq, self.frame * self.wire.hop)
        self.seq, self.frame = self.seq + 1, self.frame + 1
        return data

    def media(self, hostile: bool = True) -> tuple[str, bytes]:
        if not hostile:
            return "stream", self.stream()
        kind = self.MEDIA_KINDS[self.i % len(self.MEDIA_KINDS)]
        self.i += 1
        r, hop = self.rng, self.wire.hop
        if kind == "stream":
            data = self.stream()
        elif kind == "random":
            data = r.randbytes(r.randint(1, MAX_PACKET_BYTES))
        elif kind == "redundant_jump":
            data = self._packet(r.randrange(1 << 16), r.randrange(1 << 32) // hop * hop, redundant=MAX_REDUNDANT)
        elif kind == "truncated":
            whole = self._packet(self.seq, self.frame * hop, frames=3)
            data = whole[: r.randint(1, len(whole) - 1)]
        elif kind == "multi":
            data = self._packet(self.seq, self.frame * hop, frames=6)
            self.seq, self.frame = self.seq + 1, self.frame + 6
        elif kind == "oversized":
            data = self.stream()[:1] + r.randbytes(MAX_PACKET_BYTES + r.randint(0, 2000))
        elif kind == "replay":
            data = self.sent[r.randrange(len(self.sent))] if self.sent else self.stream()
        elif kind == "bad_version":
            whole = self.stream()
            data = bytes([(r.choice([0, 2, 15]) << 4) | (whole[0] & 0xF)]) + whole[1:]
        elif kind == "far":
            data = self._packet((self.seq + r.choice([-30000, 30000])) % (1 << 16), (self.frame * hop + r.choice([-1, 1]) * 10**9) % (1 << 32))
        elif kind == "trailing":
            data = self.stream() + r.randbytes(r.randint(1, 8))
        else:  # bad_layers
            edited = bytearray(self.stream())
            edited[8] = r.choice([0, self.wire.max_layers + 1, 255])
            data = bytes(edited)
        if kind in self.WELL_FORMED and len(self.sent) < 256:
            self.sent.append(data)
        return kind, data

    def feedback(self, hostile: bool = True) -> bytes:
        """28 bytes from 0xF1 with random (extreme) fields; every other one of a wrong length."""
        self.reports += 1
        if hostile and self.reports % 2:
            return b"\xf1" + self.rng.randbytes(self.rng.choice([0, 1, 26, 28, 29, 200]))
        return b"\xf1" + self.rng.randbytes(27)

    def control(self) -> str:
        r = self.rng
        return r.choice(
            [
                '{"type": "layer_request", "max_layers": "3"}',
                '{"type": "layer_request", "max_layers": 0}',
                '{"type": "feedback", "highest_seq": -1}',
                '{"type": "no_such_type"}',
                '{"type": "hello"}',
                "not json",
                '{"type": "start", "capture_epoch": "now"}',
                "[]",
                '{"type": "bye", "reason": 7}',
                "{" * 3000,
                json.dumps(
                    {
                        "type": "feedback",
                        "highest_seq": 2**40,
                        "received": 2**40,
                        "loss_fraction": 1.0,
                        "jitter_ms": 60000,
                        "buffer_ms": 60000,
                        "concealed_fraction": 1.0,
                        "queue_delay_ms": 60000,
                        "hold_ms": 60000,
                    }
                ),
                json.dumps({"type": "layer_request", "max_layers": r.randint(1, 255)}),
            ]
        )


def _cpu_seconds(pid: int) -> float:
    with open(f"/proc/{pid}/stat") as f:
        fields = f.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / _CLK_TCK  # utime + stime, all threads


def _rss_mib(pid: int) -> float:
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
    return float("nan")


@dataclass
class Window:
    phase: str
    media: int = 0
    feedback: int = 0
    control: int = 0
    cpu_s: float = 0.0
    rss_mib: float = 0.0
    probe_ms: float | None = None
    probe_answer: str = ""

    @property
    def packets(self) -> int:
        return self.media + self.feedback + self.control

    @property
    def us_per_packet(self) -> float | None:
        return 1e6 * self.cpu_s / self.packets if self.packets else None


@dataclass
class Flood:
    url: str
    token: str
    wire: Wire
    pid: int
    seconds: float
    rate_x: float
    normal_s: float = 1.0
    windows: list[Window] = field(default_factory=list)
    kinds: dict[str, int] = field(default_factory=dict)
    received: int = 0

    async def probe(self, window: Window) -> None:
        """A new caller: connect, hello, and time the answer (accept or reject)."""
        from transport.base import TransportClosed
        from transport.websocket import WebSocketTransport

        start = time.monotonic()
        ws = None
        try:
            ws = await WebSocketTransport.connect(self.url, open_timeout=5.0)
            await ws.send_control(self.wire.hello(self.token))
            reply = parse_message(await asyncio.wait_for(ws.recv(), 5.0))
            window.probe_ms = 1000 * (time.monotonic() - start)
            reason = getattr(reply, "reason", "")
            window.probe_answer = reply.type + (f" ({reason})" if reason else "")
        except (TransportClosed, TimeoutError, ValueError) as exc:
            window.probe_answer = f"no answer ({type(exc).__name__}: {exc})"
        finally:
            if ws is not None:
                await ws.close("probe done")

    async def _drain(self, ws) -> None:
        from transport.base import TransportClosed

        try:
            while True:
                await ws.recv()
                self.received += 1
        except TransportClosed:
            return

    async def run(self) -> dict:
        from transport.websocket import WebSocketTransport

        ws = await WebSocketTransport.connect(self.url)
        await ws.send_control(self.wire.hello(self.token))
        answer = parse_message(await asyncio.wait_for(ws.recv(), 10.0))
        if answer.type != "accept":
            raise SystemExit(f"the flooding caller was not accepted: {answer}")
        drain = asyncio.create_task(self._drain(ws))
        junk = Junk(self.wire)
        probes: list[asyncio.Task] = []

        def launch_probe(window: Window) -> None:
            probes.append(asyncio.create_task(self.probe(window)))

        loop = asyncio.get_running_loop()
        phases = [("normal", 1.0)] * round(self.normal_s) + [("flood", self.rate_x)] * round(self.seconds)
        t0 = loop.time()
        for index, (phase, x) in enumerate(phases):
            window = Window(phase)
            self.windows.append(window)
            cpu0, start = _cpu_seconds(self.pid), t0 + index
            if phase == "flood":
                loop.call_at(start + 0.5, launch_probe, window)
            media_due = feedback_due = control_due = 0.0
            while (now := loop.time()) < start + 1.0:
                elapsed = now - start + TICK_S
                media_due, feedback_due = NORMAL_MEDIA_PER_S * x * elapsed, NORMAL_FEEDBACK_PER_S * x * elapsed
                control_due = JUNK_CONTROL_PER_S * elapsed if phase == "flood" else 0.0
                while window.media < int(media_due):
                    kind, data = junk.media(hostile=phase == "flood")
                    self.kinds[kind] = self.kinds.get(kind, 0) + 1
                    await ws.connection.send(data)  # not send_media: a flood does not skip when the socket backs up
                    window.media += 1
                while window.feedback < int(feedback_due):
                    await ws.connection.send(junk.feedback(hostile=phase == "flood"))
                    window.feedback += 1
                while window.control < int(control_due):
                    await ws.connection.send(junk.control())
                    window.control += 1
                await asyncio.sleep(max(0.0, min(TICK_S, start + 1.0 - loop.time())))
            window.cpu_s = _cpu_seconds(self.pid) - cpu0
            window.rss_mib = _rss_mib(self.pid)
        await asyncio.gather(*probes, return_exceptions=True)
        await ws.send_control(dump_message(EndOfStream()))
        await ws.send_control(dump_message(Bye(reason="flood over")))
        try:
            await asyncio.wait_for(drain, 10.0)  # the listener plays out, then closes
        except TimeoutError:
            pass
        await ws.close("flood over")
        after = Window("after")
        await self.probe(after)
        return {"after_probe": after}


_COUNTS = ["media/s", "feedback/s", "junk control/s", "listener CPU ms", "CPU us/packet", "RSS MiB", "new caller answered in"]
TABLE = MarkdownTable(["s", "phase", *_COUNTS, "answer"], right=_COUNTS)


def _whole(value: float | None) -> str | None:
    return None if value is None else f"{value:.0f}"


def _table(windows: list[Window]) -> str:
    return TABLE.render(
        [
            i + 1,
            w.phase,
            w.media,
            w.feedback,
            w.control,
            f"{1000 * w.cpu_s:.0f}",
            _whole(w.us_per_packet),
            f"{w.rss_mib:.0f}",
            f"{w.probe_ms:.0f} ms" if w.probe_ms is not None else None,
            w.probe_answer or None,
        ]
        for i, w in enumerate(windows)
    )


def _start_listener(tmp: Path, token: str, model: str | None) -> subprocess.Popen:
    command = [
        sys.executable,
        "-m",
        "ssvoip",
        "listen",
        "--host",
        "127.0.0.1",
        "--port",
        "0",
        "--input",
        "tone",
        "--output",
        str(tmp / "out.wav"),
        "--stats-json",
        str(tmp / "stats.jsonl"),
        "--no-webrtc",
    ]
    if model:
        command += ["--model", model]
    with (tmp / "listener.log").open("w") as log:
        return subprocess.Popen(command, cwd=ROOT, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=log, env=os.environ | {"SSVOIP_TOKEN": token})


def _listening_url(process: subprocess.Popen, tmp: Path) -> str:
    deadline = time.monotonic() + 90
    while time.monotonic() < deadline:
        text = (tmp / "listener.log").read_text()
        for line in text.splitlines():
            if line.startswith("listening on "):
                return line.split()[2]
        if process.poll() is not None:
            raise SystemExit(f"the listener exited ({process.returncode}): {text.strip()[-500:]}")
        time.sleep(0.05)
    process.kill()
    raise SystemExit("the listener did not start within 90 s")


def run(seconds: float = 10.0, rate_x: float = 10.0, normal_s: float = 1.0, model: str | None = None) -> dict:
    token = secrets.token_urlsafe(24)
    with tempfile.TemporaryDirectory(prefix="flood-") as folder:
        tmp = Path(folder)
        started = time.monotonic()
        process = _start_listener(tmp, token, model)
        try:
            wire = Wire.for_model(model)  # imports torch: while the listener loads its model
            url = _listening_url(process, tmp)
            flood = Flood(url, token, wire, process.pid, seconds, rate_x, normal_s)
            extra = asyncio.run(flood.run())
            stats_path = tmp / "stats.jsonl"
            deadline = time.monotonic() + 10
            while time.monotonic() < deadline and not (stats_path.exists() and stats_path.read_text().strip()):
                time.sleep(0.05)
            lines = stats_path.read_text().splitlines() if stats_path.exists() else []
            call = CallSummary.model_validate_json(lines[0]) if lines else None
        finally:
            process.terminate()
            try:
                process.wait(10)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()
        total_s = time.monotonic() - started
    flood_w = [w for w in flood.windows if w.phase == "flood"]
    normal_w = [w for w in flood.windows if w.phase == "normal"]
    per_packet = [w.us_per_packet for w in flood_w if w.us_per_packet is not None]
    k = max(1, min(3, len(per_packet) // 2))
    growth = (float(np.mean(per_packet[-k:])) / float(np.mean(per_packet[:k]))) if per_packet and np.mean(per_packet[:k]) > 0 else None
    probes = [w for w in flood_w if w.probe_answer]
    answered_ms = [w.probe_ms for w in probes if w.probe_ms is not None]
    received = call.received if call is not None else None
    after = extra["after_probe"]
    return {
        "command": "python -m bench.flood" + (f" --seconds {seconds:g}" if seconds != 10 else "") + (f" --rate-x {rate_x:g}" if rate_x != 10 else ""),
        "seconds": seconds,
        "rate_x": rate_x,
        "media_per_s": round(sum(w.media for w in flood_w) / max(1, len(flood_w)), 1),
        "feedback_per_s": round(sum(w.feedback for w in flood_w) / max(1, len(flood_w)), 1),
        "control_per_s": round(sum(w.control for w in flood_w) / max(1, len(flood_w)), 1),
        "packets_sent": sum(w.packets for w in flood.windows),
        "media_kinds": flood.kinds,
        "us_per_packet_normal": round(normal_w[0].us_per_packet, 1) if normal_w and normal_w[0].us_per_packet else None,
        "us_per_packet_flood": [round(v, 1) for v in per_packet],
        "us_per_packet_growth": round(growth, 3) if growth is not None else None,  # last windows over first: ~1 = flat
        "listener_cpu_percent_flood": round(100 * sum(w.cpu_s for w in flood_w) / max(1, len(flood_w)), 1),
        "rss_mib": [round(w.rss_mib, 1) for w in flood.windows],
        "probes": len(probes),
        "probes_answered": len(answered_ms),
        "probe_ms_max": round(max(answered_ms), 1) if answered_ms else None,
        "probes_answered_within_1s": sum(ms <= 1000 * ANSWER_WITHIN_S for ms in answered_ms),
        "probe_answers": sorted({w.probe_answer for w in probes}),
        "call_ended_by": call.ended_by if call is not None else None,
        "call_malformed": received.malformed if received is not None else None,
        "call_frames_received": received.frames_received if received is not None else None,
        "call_frames_played": received.frames_played if received is not None else None,
        "call_dropped_frames": received.dropped_frames if received is not None else None,
        "after_flood_probe": after.probe_answer,
        "after_flood_probe_ms": round(after.probe_ms, 1) if after.probe_ms is not None else None,
        "total_s": round(total_s, 1),
        "table": _table(flood.windows),
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m bench.flood", description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter, parents=[model_option()]
    )
    parser.add_argument("--seconds", type=float, default=10.0, help="flood length (1-s windows)")
    parser.add_argument("--rate-x", type=float, default=10.0, help="times a call's normal packet and feedback rates")
    parser.add_argument("--json", type=Path, help="also write the JSON here")
    args = parser.parse_args(argv)
    if not 1 <= args.seconds <= 60 or not 0 < args.rate_x <= 100:
        parser.error("--seconds must be in 1..60 and --rate-x in (0, 100]")
    result = run(args.seconds, args.rate_x, model=args.model)
    print(result["table"])
    print()
    print(
        f"per-packet CPU growth (last 3 s / first 3 s): {result['us_per_packet_growth']}; new callers answered within "
        f"{ANSWER_WITHIN_S:g} s: {result['probes_answered_within_1s']}/{result['probes']} (slowest {result['probe_ms_max']} ms); "
        f"call ended by: {result['call_ended_by']}; malformed counted: {result['call_malformed']}; "
        f"after the flood a new caller got: {result['after_flood_probe']}"
    )
    text = json.dumps({k: v for k, v in result.items() if k != "table"})
    print(text)
    if args.json is not None:
        args.json.write_text(text + "\n")
    ok = result["probes"] and result["probes_answered_within_1s"] == result["probes"] and str(result["call_ended_by"]).startswith("the other side hung up")
    return 0 if ok else 1


if __name__ == "__main__":
    raise SystemExit(main())
