"""`ssvoip experiment SCENARIO`: a call through an impairment relay, measured every 100 ms.

One process holds both ends (one clock: one-way delay and mouth-to-ear are exact): a
listener on 127.0.0.1, a caller streaming a speech file to it, and between them the
userspace relay of `netsim.relay` applying the scenario (base impairment + trace) to
both directions:
- websocket: a TCP relay in front of the listener's port; everything crosses it;
- WebRTC: the media path crosses a UDP relay (the answer's ICE candidate is rewritten to
  the relay's address; the relay forwards to the real one), and the signaling websocket a TCP
  relay with the same scenario (control messages, and the media if the data channel closes
  and the call falls back to the websocket: `media_packets_by_path` in the summary).
The relay arms once the call is set up (the scenario's clock starts with the media).

Written to OUT: `timeline.csv` (every 100 ms: capacity, sent kbps as the relay counts it,
layers, frames per packet, redundancy, estimate, loss, queueing delay, buffer, playout target,
concealed share), `timeline.png`, `received.wav`, `summary.json` (PESQ-WB / STOI against the input,
time to adapt after a capacity drop, delay recovery, longest gap without audio, played
share, ...), and with `dump_trace` `playout_trace.npz` (every playout decision with its frame's
codes, and the audio sent: `receiver.playout_trace`, replayed by `bench.concealment_replay`).
"""

from __future__ import annotations

import asyncio
import csv
import json
import math
import re
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal

import numpy as np
from pydantic import BaseModel, ConfigDict, Field

from codec.engine import DEFAULT_ENGINE
from receiver.concealment import DEFAULT_CONCEALMENT, ConcealmentName
from netsim.relay import TcpRelay, UdpRelay
from netsim.scenario import Scenario, load_scenario
from netsim.scenario import Transport as NetworkTransport
from protocol.telemetry import Percentiles, ReceiveSnapshot

SAMPLE_S = 0.1
_CANDIDATE = re.compile(r"^a=candidate:(\S+) (\d) udp (\d+) ([0-9.]+) (\d+) typ host.*$", re.MULTILINE)
_ANY_CANDIDATE = re.compile(r"^a=candidate:.*\r?\n", re.MULTILINE)


class ExperimentConfig(BaseModel):
    model_config = ConfigDict(extra="forbid")

    scenario: str
    transport: Literal["websocket", "webrtc"] = "websocket"
    input: Path
    out: Path
    kbps: float = Field(default=16.0, gt=0, le=64)  # the ceiling the controller works under
    adapt: bool = True
    protect: bool = True
    duration_s: float | None = Field(default=None, gt=0)  # default: the scenario's
    seed: int = 0
    engine: str = DEFAULT_ENGINE
    model: str | None = None  # a shipped model's name (default: the default model)
    concealment: ConcealmentName = DEFAULT_CONCEALMENT  # the listener's (receiver.concealment)
    dump_trace: bool = False  # write playout_trace.npz: every playout decision (receiver.playout_trace)


class Adaptation(BaseModel):
    """How the rate control followed the scenario's first capacity drop and the rise after it
    (None: that moment did not come, or the call never got there)."""

    model_config = ConfigDict(extra="forbid", frozen=True, strict=True)

    time_to_under_capacity_s: float | None = None
    queue_delay_peak_ms: float | None = None
    time_to_queue_under_150ms_s: float | None = None
    time_to_80pct_after_rise_s: float | None = None


class ExperimentSummary(Adaptation):
    """One experiment (`summary.json`, and the line `ssvoip experiment` prints)."""

    scenario: str
    transport: str
    adapt: bool
    protect: bool
    seconds: float
    pesq_wb: float
    stoi: float
    played_fraction: float  # of the listener's frames: 1 - concealed share
    longest_gap_ms: int
    loss_fraction: float
    redundant_played: int
    layers_mean: float
    mouth_to_ear_ms: Percentiles
    sent_kbps_mean: float | None  # as the relay counted it
    relay: list[dict[str, dict[str, int]]]  # each relay's counters (netsim.relay), forward and backward
    media_packets_by_path: dict[str, int]  # > 0 on "websocket" over WebRTC: it fell back


@dataclass
class _Counters:
    """Cumulative counters read at each sample; rows are their differences."""

    t: float = 0.0
    relay_bytes: int = 0
    frames: int = 0
    expected: int = 0
    received: int = 0
    played: int = 0
    concealed: int = 0


@dataclass
class Timeline:
    rows: list[dict[str, float]] = field(default_factory=list)


async def run_experiment(cfg: ExperimentConfig) -> ExperimentSummary:
    import soundfile as sf
    import torch

    from call.caller import dial
    from call.listener import Listener
    from call.session import CallSession
    from codec.engine import prepare
    from codec.weights import load_model
    from receiver.playout_trace import PlayoutTrace
    from receiver.sinks import WavSink
    from transmitter.sender import Transmitter
    from transmitter.sources import FileSource

    torch.set_num_threads(1)
    scenario = load_scenario(cfg.scenario)
    duration = cfg.duration_s or scenario.duration_s
    model, model_id = load_model(name=cfg.model)
    mcfg = model.cfg
    prepare(model, model_id, cfg.engine)
    cfg.out.mkdir(parents=True, exist_ok=True)
    received_wav = cfg.out / "received.wav"
    source = FileSource(cfg.input, mcfg.sample_rate, mcfg.hop)
    frames_needed = int(math.ceil(duration / (mcfg.hop / mcfg.sample_rate)))
    reps = -(-frames_needed // len(source.frames))
    source.frames = np.tile(source.frames, (reps, 1))[:frames_needed]  # loop the file to the scenario's length

    trace = PlayoutTrace(mcfg.n_quantizers) if cfg.dump_trace else None

    def attach_trace(session: CallSession | None) -> None:
        if trace is not None and session is not None and session.incoming is not None:
            session.incoming.trace = trace  # before the session runs: from its first frame

    listener = Listener(
        model, model_id, lambda: WavSink(received_wav, mcfg.sample_rate), engine=cfg.engine, concealment=cfg.concealment, on_session=attach_trace
    )
    server = await listener.serve("127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    kind: NetworkTransport = "tcp" if cfg.transport == "websocket" else "udp"
    relays: list[TcpRelay | UdpRelay] = []

    async def through_udp_relay(sdp: str) -> str:
        match = _CANDIDATE.search(sdp)
        if match is None:
            return sdp
        host, real_port = match.group(4), int(match.group(5))
        relay = UdpRelay((host, 0), (host, real_port), scenario.config_for("udp"), trace=scenario.trace, seed=cfg.seed, armed=False)
        await relay.start()
        relays.append(relay)
        relay_port = relay.listen_address[1]
        line = f"a=candidate:{match.group(1)} {match.group(2)} udp {match.group(3)} {host} {relay_port} typ host"
        # Only the relay's candidate is left: every other path would bypass the impairment.
        return _ANY_CANDIDATE.sub("", sdp).replace("a=end-of-candidates", line + "\r\na=end-of-candidates")

    # The websocket crosses a TCP relay with the same scenario on either transport: it carries
    # the media over the websocket, and over WebRTC the control messages and, should the data
    # channel close (ICE consent lost in a trough), the media it falls back to. Left straight,
    # that fallback ran on a clean path and the rest of the call measured nothing.
    tcp_relay = TcpRelay(("127.0.0.1", 0), ("127.0.0.1", port), scenario.config_for("tcp"), trace=scenario.trace, seed=cfg.seed, armed=False)
    await tcp_relay.start()
    relays.append(tcp_relay)
    url = f"ws://127.0.0.1:{tcp_relay.listen_address[1]}"

    transmitter = Transmitter(model, model_id, mcfg.layers_for_kbps(cfg.kbps), engine=cfg.engine, adapt=cfg.adapt, protect=cfg.protect)
    timeline = Timeline()
    async with server:
        dialed = await dial(url, transmitter, cfg.transport, answer_filter=through_udp_relay if kind == "udp" else None)
        if cfg.transport == "webrtc" and dialed.media_path != "webrtc":
            raise RuntimeError("the WebRTC data channel did not open through the relay")
        for r in relays:
            r.arm()  # the scenario's clock starts with the media
        session = CallSession(dialed.transport, transmitter, source, state=dialed.state)
        sampler = asyncio.create_task(_sample(timeline, scenario, kind, relays, transmitter, listener))
        started = time.monotonic()
        try:
            # A link slower than the sender (adaptation off) drains its backlog after the input
            # ends; past a grace period the call is hung up, and the summary shows the damage.
            asyncio.get_running_loop().call_later(duration + 20, session.hang_up, "experiment time limit")
            await session.run()
            try:
                await asyncio.wait_for(listener.call_ended.wait(), 30)
            except TimeoutError:
                pass  # summarised below from what the listener played
        finally:
            sampler.cancel()
            await dialed.transport.close()
            for r in relays:
                await r.close()
    wall = time.monotonic() - started
    if not listener.calls:
        raise RuntimeError("the listener's side of the call did not end")
    call = listener.calls[-1].received
    if call is None:
        raise RuntimeError("the listener's side of the call had no incoming half")
    sent_audio = source.frames.reshape(-1)
    if trace is not None:
        trace.save(cfg.out / "playout_trace.npz", sent_audio, model_id)
    got, _ = sf.read(received_wav, dtype="float32")
    summary = _summarise(cfg, scenario, timeline, call, sent_audio, got, wall, relays, dict(dialed.transport.media_sent))
    _write(cfg.out, timeline, summary, scenario)
    return summary


async def _sample(timeline: Timeline, scenario: Scenario, kind: NetworkTransport, relays, transmitter, listener) -> None:
    loop = asyncio.get_running_loop()
    start = loop.time()
    last = _Counters(t=0.0)
    while True:
        await asyncio.sleep(SAMPLE_S - (loop.time() - start) % SAMPLE_S)
        t = loop.time() - start
        incoming = listener.session.incoming if listener.session is not None else None
        now = _Counters(t=t, relay_bytes=sum(r.counters()["forward"]["sent_bytes"] for r in relays), frames=transmitter.stats.frames)
        row: dict[str, float] = {"t": round(t, 2), "capacity_kbps": _capacity(scenario, kind, t)}
        if incoming is not None:
            rs, ps = incoming.receive_stats, incoming.playout.stats
            now.expected, now.received = rs.expected, rs.received
            now.played, now.concealed = ps.played + ps.redundant, ps.concealed + ps.expanded
        dt = max(1e-6, t - last.t)
        plan = transmitter.policy.plan if transmitter.policy is not None else None
        expected = now.expected - last.expected
        shown = (now.played - last.played) + (now.concealed - last.concealed)
        row |= {
            "sent_kbps": round(8 * (now.relay_bytes - last.relay_bytes) / dt / 1000, 2),
            "layers": transmitter.stats.layers,
            "frames_per_packet": plan.frames_per_packet if plan else 1,
            "redundant_frames": plan.redundant_frames if plan else 0,
            "estimate_kbps": round(plan.estimate_bps / 1000, 2) if plan else float("nan"),
            "loss": round(max(0, expected - (now.received - last.received)) / expected, 3) if expected > 0 else 0.0,
            "queue_delay_ms": round(incoming.playout.queue_delay_ms, 1) if incoming else 0.0,
            "buffer_ms": round(incoming.playout.level_ms, 1) if incoming else 0.0,
            "target_ms": round(incoming.playout.target_ms, 1) if incoming else 0.0,
            "concealed": round((now.concealed - last.concealed) / shown, 3) if shown else 0.0,
        }
        timeline.rows.append(row)
        last = now


def _capacity(scenario: Scenario, kind: NetworkTransport, t: float) -> float:
    rate = scenario.config_at(t, kind).rate_kbps
    return float(rate) if rate is not None else float("nan")


def _summarise(
    cfg,
    scenario: Scenario,
    timeline: Timeline,
    call: ReceiveSnapshot,
    sent: np.ndarray,
    got: np.ndarray,
    wall: float,
    relays,
    media_packets_by_path: dict[str, int],
) -> ExperimentSummary:
    from codec.train.evaluate import RATE, metrics

    from pystoi import stoi

    aligned = align_received(got, sent)
    quality = metrics(sent, aligned)  # PESQ-WB realigns each utterance itself; STOI does not (align_segments)
    intelligibility = stoi(sent.astype(np.float64), align_segments(got, sent).astype(np.float64), RATE)
    rows = timeline.rows
    return ExperimentSummary(
        scenario=scenario.name,
        transport=cfg.transport,
        adapt=cfg.adapt,
        protect=cfg.protect,
        seconds=round(wall, 1),
        pesq_wb=round(float(quality["pesq_wb"]), 3),
        stoi=round(float(intelligibility), 3),
        played_fraction=round(1 - call.concealed_fraction, 4),
        longest_gap_ms=call.longest_gap_ms,
        loss_fraction=call.loss_fraction,
        redundant_played=call.redundant_played,
        layers_mean=call.layers_mean,
        mouth_to_ear_ms=call.mouth_to_ear_ms,
        sent_kbps_mean=round(float(np.mean([r["sent_kbps"] for r in rows])), 2) if rows else None,
        relay=[r.counters() for r in relays],
        media_packets_by_path=media_packets_by_path,
        **_adaptation(rows).model_dump(),
    )


def _adaptation(rows: list[dict[str, float]]) -> Adaptation:
    """Time to adapt after the first capacity drop, and to recover after the next rise."""
    out: dict[str, float | None] = {}
    caps = [r["capacity_kbps"] for r in rows]
    drop = next((i for i in range(1, len(rows)) if caps[i] < caps[i - 1]), None)
    if drop is None:
        return Adaptation()
    t0, cap = rows[drop]["t"], caps[drop]
    under = next((r["t"] for r in rows[drop:] if r["sent_kbps"] <= cap), None)
    out["time_to_under_capacity_s"] = round(under - t0, 2) if under is not None else None
    base = min(r["queue_delay_ms"] for r in rows[:drop]) if drop else 0.0
    peak = max(range(drop, len(rows)), key=lambda i: rows[i]["queue_delay_ms"] if caps[i] == cap else -1)
    settled = next((r["t"] for r in rows[peak:] if r["queue_delay_ms"] - base < 150), None)
    out["queue_delay_peak_ms"] = rows[peak]["queue_delay_ms"]
    out["time_to_queue_under_150ms_s"] = round(settled - t0, 2) if settled is not None else None
    rise = next((i for i in range(drop + 1, len(rows)) if caps[i] > caps[i - 1]), None)
    if rise is not None:
        t1, high = rows[rise]["t"], caps[rise]
        reached = next((r["t"] for r in rows[rise:] if r["sent_kbps"] >= 0.8 * high), None)
        out["time_to_80pct_after_rise_s"] = round(reached - t1, 2) if reached is not None else None
    return Adaptation(**out)


def align_received(received: np.ndarray, reference: np.ndarray) -> np.ndarray:
    """The received audio shifted by its delay (cross-correlation of the first 2 s)."""
    lag = received_lag(received, reference)
    out = received[lag : lag + reference.size]
    return np.pad(out, (0, reference.size - out.size))


def received_lag(received: np.ndarray, reference: np.ndarray) -> int:
    """Samples from the start of the received audio to where the reference's first 2 s match."""
    n = min(reference.size, 32000)
    if received.size <= n:
        return 0
    span = min(16000, received.size - n)
    scores = [float(np.dot(received[lag : lag + n], reference[:n])) for lag in range(0, span, 40)]
    return 40 * int(np.argmax(scores)) if scores else 0


def align_segments(received: np.ndarray, reference: np.ndarray, segment: int = 32000, reach: int = 16000, confident: float = 0.3) -> np.ndarray:
    """The received audio realigned a segment (2 s) at a time: each segment of the reference gets
    the received stretch most like it (normalised cross-correlation) within `reach` samples (1 s)
    of the last confidently matched segment's lag (0 before the first). The playout moves during
    a call (skips for delay, stretches, jumps: 40-80 ms ahead by the end of a clean 30 s WebRTC
    call), and one lag for the whole call misaligns everything after a move: STOI, which compares
    384 ms windows in place, scored that clean call 0.52 (0.94 realigned). The received audio can
    also start ahead of the sent (the first packet lost: the playout starts at the first frame
    that came), which `received_lag` (lags from 0 up) cannot see: it then picks any lag (STOI
    0.10-0.15 for calls that scored 0.77-0.92 realigned). PESQ realigns each utterance itself."""
    from scipy.signal import correlate

    received = np.concatenate([np.zeros(reach, received.dtype), received])  # lags down to -reach
    lag = reach
    out = np.zeros_like(reference)
    for start in range(0, reference.size, segment):
        ref = reference[start : start + segment].astype(np.float64)
        lo = max(0, start + lag - reach)
        hi = min(received.size - ref.size, start + lag + reach)  # the last start that fits
        if hi < lo:
            best = min(start + lag, received.size)  # the received audio ran out: what is left
        else:
            window = received[lo : hi + ref.size].astype(np.float64)
            match = correlate(window, ref, mode="valid", method="fft")
            running = np.concatenate(([0.0], np.cumsum(window * window)))
            energy = running[ref.size :] - running[: -ref.size]  # of each candidate stretch
            similarity = match / np.sqrt(energy * float(ref @ ref) + 1e-12)
            best = lo + int(np.argmax(similarity))
            if similarity[best - lo] >= confident:
                lag = best - start  # a delay that keeps growing is followed; a silent or garbled segment leads nowhere
        piece = received[best : best + ref.size]
        out[start : start + piece.size] = piece
    return out


def _write(out: Path, timeline: Timeline, summary: ExperimentSummary, scenario: Scenario) -> None:
    rows = timeline.rows
    if rows:
        with (out / "timeline.csv").open("w", newline="") as f:
            writer = csv.DictWriter(f, fieldnames=list(rows[0]))
            writer.writeheader()
            writer.writerows(rows)
        _plot(
            out / "timeline.png",
            rows,
            f"{scenario.name} ({summary.transport}, adapt {'on' if summary.adapt else 'off'}, protect {'on' if summary.protect else 'off'})",
        )
    (out / "summary.json").write_text(json.dumps(summary.model_dump(mode="json"), indent=1) + "\n")


def _plot(path: Path, rows: list[dict[str, float]], title: str) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    t = [r["t"] for r in rows]
    fig, axes = plt.subplots(4, 1, figsize=(9, 9), sharex=True)
    axes[0].plot(t, [r["capacity_kbps"] for r in rows], label="capacity", color="k", lw=1.5)
    axes[0].plot(t, [r["sent_kbps"] for r in rows], label="sent (relay count)", lw=1)
    axes[0].plot(t, [r["estimate_kbps"] for r in rows], label="estimate (model wire)", lw=1, ls="--")
    axes[0].set_ylabel("kbit/s")
    axes[1].step(t, [r["layers"] for r in rows], label="layers", where="post")
    axes[1].step(t, [r["frames_per_packet"] for r in rows], label="frames/packet", where="post")
    axes[1].step(t, [r["redundant_frames"] for r in rows], label="redundant frames", where="post")
    axes[2].plot(t, [100 * r["loss"] for r in rows], label="loss %", lw=1)
    axes[2].plot(t, [100 * r["concealed"] for r in rows], label="concealed %", lw=1)
    axes[3].plot(t, [r["queue_delay_ms"] for r in rows], label="queueing delay", lw=1)
    axes[3].plot(t, [r["buffer_ms"] for r in rows], label="playout buffer", lw=1)
    axes[3].plot(t, [r["target_ms"] for r in rows], label="playout target", lw=1, ls="--")
    axes[3].set_ylabel("ms")
    axes[3].set_xlabel("seconds")
    for ax in axes:
        ax.legend(loc="upper right", fontsize=8)
        ax.grid(alpha=0.3)
    axes[0].set_title(title)
    fig.tight_layout()
    fig.savefig(path, dpi=90)
    plt.close(fig)
