"""A live call's playout, replayed through each concealer: `python -m bench.concealment_replay TRACE`.

TRACE is the `playout_trace.npz` of `ssvoip experiment SCENARIO --dump-trace`
(`receiver.playout_trace`: every period the live receiver rendered, its frame's codes, and the
audio sent). The same trace drives both concealers on the call's ONNX frame decoder, so they
are compared on exactly the losses, stage counts and playout decisions of the call, without the
run-to-run noise of live A/B. Each row is scored (PESQ-WB, STOI) against the audio sent:

- `as played`: the periods in the live order (expansions stretch the audio, skipped frames are
  decoded but not played), scored as `ssvoip experiment` scores `received.wav` (PESQ-WB after one
  lag from the first 2 s, STOI realigned every 2 s: `call.experiment.align_segments`): the live
  figure, reproduced;
- `frame-aligned`: each sent frame in its own place: the frames that reached the decoder (played,
  redundant or skipped) decoded, every other one concealed: the same losses and stage counts
  without the playout's time warping;
- `frame-aligned, N stages`: the same losses, the sent audio re-encoded at N stages for every
  frame (the offline bench's setting is 46): what the call's stage counts cost;
- `no loss, call's stages`: every frame at the stage count the call carried around it (the
  codec alone under the rate controller).
"""

from __future__ import annotations

import argparse
import json
import sys
import zipfile
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np
import torch

from codec.concealment import DEFAULT_PREDICTOR, LatentPredictor, StreamingPredictor, load_predictor
from codec.markdown_table import MarkdownTable
from receiver.concealment import NeuralConcealer, RepeatConcealer
from protocol.playout import nearest_later
from receiver.playout_trace import Event, Trace, load_trace

RATE = 16_000
_MAX_OFFSET = 8  # frames: the playout's frame 0 is the first to arrive, not always the first sent


@dataclass(frozen=True)
class TraceStats:
    periods: int
    played: int
    redundant: int
    concealed: int
    expanded: int
    skipped: int
    lost_fraction: float  # frames of the span that never reached the decoder
    layers_mean: float
    layers_p10: float
    layers_p90: float
    layers_below_46: float  # share of received frames with fewer than 46 stages
    layers_at_fewest: float  # share of received frames at the trace's fewest stages
    gaps: dict[int, int]  # runs of missing frames: length -> how many
    drift_frames: tuple[int, int]  # periods played minus the frame index played, lowest and highest
    offset: int  # the playout's frame 0 is this sent frame


@dataclass(frozen=True)
class Row:
    case: str
    concealer: str
    pesq_wb: float
    stoi: float


class _Player:
    """The trace's model, its frame decoder (ONNX, as in the call) and the concealers."""

    def __init__(self, model_id: str, predictor: LatentPredictor) -> None:
        from codec.engine import frame_decoder
        from codec.weights import load_model

        self.model, loaded = load_model(None, model_id.rsplit("-", 1)[0])
        if loaded != model_id:
            raise ValueError(f"the trace was recorded with {model_id}, the shipped model is {loaded}")
        self.hop = self.model.cfg.hop
        self.decoder = frame_decoder(self.model, loaded, "onnx")
        self.predictor = predictor

    def concealer(self, name: str) -> RepeatConcealer | NeuralConcealer:
        if name == "repeat":
            return RepeatConcealer(self.hop)
        table = self.model.quantizer.table.detach().numpy()
        return NeuralConcealer(self.hop, StreamingPredictor(self.predictor), table, self.model.cfg.codebook_size)

    def codes(self, audio: np.ndarray) -> np.ndarray:
        """[stages, frames]: every stage of the sent audio (a frame's first n are its n-stage codes)."""
        x = torch.from_numpy(audio[: audio.size // self.hop * self.hop])[None]
        with torch.no_grad():
            return self.model.encode(x, self.model.cfg.n_quantizers)[0].numpy()


def as_played(player: _Player, trace: Trace, name: str) -> np.ndarray:
    """The periods in the live order, through concealer `name`: what the listener heard."""
    concealer, out = player.concealer(name), []
    player.decoder.reset()
    for event, codes, layers, distance in zip(trace.events, trace.codes, trace.layers, trace.distances):
        if event in (Event.PLAY, Event.PLAY_REDUNDANT, Event.SKIP):
            audio = concealer.received(player.decoder, codes[:layers].astype(np.int64))
            if event != Event.SKIP:
                out.append(audio)
        elif layers:  # a concealed period's codes are the later frame's the buffer held
            out.append(concealer.missing(player.decoder, codes[:layers].astype(np.int64), int(distance)))
        else:
            out.append(concealer.missing(player.decoder))
    return np.concatenate(out) if out else np.zeros(0, np.float32)


def received_frames(trace: Trace) -> dict[int, np.ndarray]:
    """Frame index -> the codes that reached the decoder (played, redundant or skipped; a skipped
    frame is placed just before the frame played after it, where the buffer took it from)."""
    frames: dict[int, np.ndarray] = {}
    pending: list[np.ndarray] = []
    for event, index, codes, layers in zip(trace.events, trace.indices, trace.codes, trace.layers):
        if event == Event.SKIP:
            pending.append(codes[:layers].astype(np.int64))
            continue
        if index >= 0:
            for k, skipped in enumerate(pending):
                frames.setdefault(int(index) - len(pending) + k, skipped)
        pending = []
        if event in (Event.PLAY, Event.PLAY_REDUNDANT):
            frames[int(index)] = codes[:layers].astype(np.int64)
    return frames


def gap_lengths(lost: list[bool]) -> dict[int, int]:
    """Runs of consecutive missing frames: length -> count."""
    edges = np.diff(np.concatenate([[0], np.asarray(lost, np.int8), [0]]))
    lengths = np.flatnonzero(edges == -1) - np.flatnonzero(edges == 1)
    return {int(k): int(v) for k, v in zip(*np.unique(lengths, return_counts=True))}


def drift(trace: Trace) -> tuple[int, int]:
    """How far the playout's clock moved from the sender's: periods rendered before each frame
    with an index minus that index (0 throughout: no stretching), lowest and highest."""
    rendered = np.cumsum(trace.events != Event.SKIP) - 1
    indexed = (trace.indices >= 0) & (trace.events != Event.SKIP)
    offsets = rendered[indexed] - trace.indices[indexed]
    return (int(offsets.min()), int(offsets.max())) if offsets.size else (0, 0)


def frame_offset(frames: dict[int, np.ndarray], sent_codes: np.ndarray) -> int:
    """The sent frame that the playout's frame 0 is: the offset whose coarse codes match best."""

    def matches(offset: int) -> int:
        return sum(int(np.array_equal(c[:4], sent_codes[:4, i + offset])) for i, c in frames.items() if 0 <= i + offset < sent_codes.shape[1])

    return max(range(_MAX_OFFSET), key=matches)


def frame_aligned(player: _Player, name: str, codes_at: list[np.ndarray | None]) -> np.ndarray:
    """Each frame in its place: decoded where `codes_at[t]` is known, concealed where it is None."""
    concealer = player.concealer(name)
    player.decoder.reset()
    out = []
    arrived = {t for t, codes in enumerate(codes_at) if codes is not None}
    for t, codes in enumerate(codes_at):
        if codes is not None:
            out.append(concealer.received(player.decoder, codes))
            continue
        distance = nearest_later(t, arrived)  # a buffer holding the nearest later frame that came
        later = codes_at[t + distance]
        out.append(concealer.missing(player.decoder, later, distance) if later is not None and distance else concealer.missing(player.decoder))
    return np.concatenate(out)


def _scores(reference: np.ndarray, decoded: np.ndarray) -> tuple[float, float]:
    from codec.train.evaluate import metrics

    n = min(reference.size, decoded.size)
    m = metrics(reference[:n], decoded[:n])
    return round(m["pesq_wb"], 3), round(m["stoi"], 3)


def replay(
    trace: Trace, predictor: LatentPredictor, stages: tuple[int, ...] = (46,), concealers: tuple[str, ...] = ("repeat", "neural")
) -> tuple[TraceStats, list[Row]]:
    from call.experiment import align_received, align_segments

    player = _Player(trace.model_id, predictor)
    sent_codes = player.codes(trace.sent)
    frames = received_frames(trace)
    offset = frame_offset(frames, sent_codes)
    span = range(min(frames), max(frames) + 1)
    reference = trace.sent[(span.start + offset) * player.hop : (span.stop + offset) * player.hop]
    got = [frames.get(i) for i in span]
    # A lost frame's stage count: the last received one's (the rate controller moves slowly).
    counts, last = [], int(got[0].size) if got[0] is not None else 1
    for c in got:
        last = c.size if c is not None else last
        counts.append(last)
    layers = np.array([c.size for c in got if c is not None])
    events = trace.events
    stats = TraceStats(
        periods=int(np.sum(events != Event.SKIP)),
        played=int(np.sum(events == Event.PLAY)),
        redundant=int(np.sum(events == Event.PLAY_REDUNDANT)),
        concealed=int(np.sum(events == Event.CONCEAL)),
        expanded=int(np.sum(events == Event.EXPAND)),
        skipped=int(np.sum(events == Event.SKIP)),
        lost_fraction=round(sum(c is None for c in got) / len(got), 4),
        layers_mean=round(float(layers.mean()), 2),
        layers_p10=float(np.percentile(layers, 10)),
        layers_p90=float(np.percentile(layers, 90)),
        layers_below_46=round(float(np.mean(layers < 46)), 3),
        layers_at_fewest=round(float(np.mean(layers == layers.min())), 3),
        gaps=gap_lengths([c is None for c in got]),
        drift_frames=drift(trace),
        offset=offset,
    )
    rows = []
    for name in concealers:
        played = as_played(player, trace, name)
        pesq_wb = _scores(trace.sent, align_received(played, trace.sent))[0]
        stoi = _scores(trace.sent, align_segments(played, trace.sent))[1]  # STOI compares windows in place: the playout's moves realigned
        rows.append(Row("as played", name, pesq_wb, stoi))
        rows.append(Row("frame-aligned", name, *_scores(reference, frame_aligned(player, name, got))))
        for n in stages:
            fixed = [None if c is None else sent_codes[:n, i + offset] for i, c in zip(span, got)]
            rows.append(Row(f"frame-aligned, {n} stages", name, *_scores(reference, frame_aligned(player, name, fixed))))
    every = [sent_codes[:k, i + offset] for i, k in zip(span, counts)]
    rows.append(Row("no loss, call's stages", "codec", *_scores(reference, frame_aligned(player, "repeat", list(every)))))
    for n in stages:
        rows.append(Row(f"no loss, {n} stages", "codec", *_scores(reference, frame_aligned(player, "repeat", [sent_codes[:n, i + offset] for i in span]))))
    player.decoder.close()
    return stats, rows


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.concealment_replay", description=__doc__.split("\n")[0])
    parser.add_argument("trace", type=Path, help="playout_trace.npz from `ssvoip experiment ... --dump-trace`")
    parser.add_argument("--predictor", type=Path, default=DEFAULT_PREDICTOR)
    parser.add_argument("--stages", type=int, nargs="*", default=[46], help="fixed stage counts to replay the losses at (default 46: the offline bench's)")
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args(argv)
    torch.set_num_threads(1)
    try:
        trace = load_trace(args.trace)
        predictor = load_predictor(args.predictor)
    except (OSError, KeyError, ValueError, zipfile.BadZipFile) as error:  # a missing or foreign file: one line
        print(f"error: {args.trace}: not a playout trace ({error})", file=sys.stderr)
        return 2
    if not np.any(np.isin(trace.events, [Event.PLAY, Event.PLAY_REDUNDANT])):
        print(f"error: {args.trace}: no frame was played in this trace", file=sys.stderr)
        return 2
    try:
        stats, rows = replay(trace, predictor, tuple(args.stages))
    except ValueError as error:
        print(f"error: {error}", file=sys.stderr)
        return 2
    if args.json:
        print(json.dumps({"trace": asdict(stats), "rows": [asdict(r) for r in rows]}, indent=1))
        return 0
    print(json.dumps(asdict(stats)))
    table = MarkdownTable(["case", "concealer", "PESQ-WB", "STOI"])
    print(table.render([r.case, r.concealer, f"{r.pesq_wb:.2f}", f"{r.stoi:.3f}"] for r in rows))
    return 0


if __name__ == "__main__":
    sys.exit(main())
