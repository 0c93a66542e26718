"""Concealers compared offline: `python -m bench.concealment [FOLDER] [--json]`.

Each clip of FOLDER (default `../shared/dev-clips/speech`, evaluation only) is coded by the
default model (`--layers` stages), frames are dropped by seeded patterns (random 5, 10, 20 %,
Gilbert-Elliott bursts: 10 % in bursts of 3 frames on average; 10 % of 3-frame packets lost
whole, as a call loses them; `--patterns` also takes other `packetsN-P`: P % of N-frame
packets), and the gaps are filled by
- `repeat`: `receiver.concealment.RepeatConcealer` (the last codes again, faded; comfort noise
  after four frames, the decoder not fed meanwhile),
- `neural`: `receiver.concealment.NeuralConcealer` (the latent predictor's output, aimed at the
  nearest later frame that arrived, up to `--reach` frames on, as a call's playout buffer holds
  it: refined by the predictor's refiner, or the straight path without one; `--no-lookahead`:
  the prediction alone; decoded, faded towards comfort noise by `--fade` a frame after `--hold`
  frames; `--tune` picks the fade),
- `opus`: libopus (`libopus.so.0` through ctypes: PyAV cannot send the decoder an empty packet,
  which it takes for end of stream) encoding at the same bitrate, its decoder asked to
  conceal each lost packet (`opus_decode` with no data),
and PESQ-WB and STOI are scored against the clean clip and against the same coder with no loss.
The concealers drive the call's frame decoder (ONNX engine) frame by frame, as the receiver does.

`--tune` instead picks the neural concealer's fade on clips cut from the data builder's
held-out speech (`data/speech_val.npy`), never the dev clips; `--cost` times a frame of the
predictor and a refinement beside a frame of the ONNX decoder. Figures: docs/concealment.md.
"""

from __future__ import annotations

import argparse
import ctypes
import ctypes.util
import json
import sys
import time
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np
import torch

from codec.baselines.opus import OpusCodec
from codec.concealment import DEFAULT_PREDICTOR, LatentPredictor, StreamingPredictor, load_predictor
from codec.markdown_table import MarkdownTable
from codec.train.evaluate import clip_paths
from protocol.playout import FOLLOWING_REACH, nearest_later
from receiver.concealment import NEURAL_FADE, NEURAL_HOLD, FrameConcealer, NeuralConcealer, RepeatConcealer

DEV_CLIPS = Path(__file__).resolve().parents[2] / "shared" / "dev-clips" / "speech"
MODEL = "soundstream16k-lyra2"
RATE = 16_000
PATTERNS = ("random-5", "random-10", "random-20", "ge-10-burst3", "packets3-10")


@dataclass(frozen=True)
class Row:
    pattern: str
    concealer: str
    loss: float
    pesq_clean: float
    stoi_clean: float
    pesq_nolo: float  # against the same coder with no loss
    stoi_nolo: float


def loss_pattern(name: str, frames: int, seed: int) -> np.ndarray:
    """[frames] bool, True = lost; the first frame always arrives (a call starts with one)."""
    rng = np.random.default_rng(seed)
    if name.startswith("random-"):
        lost = rng.random(frames) < int(name.split("-")[1]) / 100
    elif name.startswith("packets"):
        # A call's packet loss: `packets6-10` loses 10 % of the packets, each carrying 6 frames
        # (what the rate controller packs at its floor: docs/concealment.md, "In live calls").
        size, percent = (int(v) for v in name.removeprefix("packets").split("-"))
        lost = np.repeat(rng.random(-(-frames // size)) < percent / 100, size)[:frames]
    elif name.startswith("ge-"):
        rate, burst = int(name.split("-")[1]) / 100, float(name.split("burst")[1])
        leave, enter = 1 / burst, rate / burst / (1 - rate)
        lost, bad = np.zeros(frames, bool), False
        for t, u in enumerate(rng.random(frames)):
            bad = u >= leave if bad else u < enter
            lost[t] = bad
    else:
        raise ValueError(f"unknown pattern {name!r}")
    lost[0] = False
    return lost


class _LibOpusDecoder:
    """libopus's own decoder at 16 kHz, with its packet-loss concealment."""

    def __init__(self, frame: int) -> None:
        name = ctypes.util.find_library("opus") or "libopus.so.0"
        self.lib = ctypes.CDLL(name)
        self.lib.opus_decoder_create.restype = ctypes.c_void_p
        self.lib.opus_decode_float.argtypes = [ctypes.c_void_p, ctypes.c_char_p, ctypes.c_int32, ctypes.POINTER(ctypes.c_float), ctypes.c_int, ctypes.c_int]
        self.lib.opus_decoder_destroy.argtypes = [ctypes.c_void_p]
        error = ctypes.c_int()
        self.state = self.lib.opus_decoder_create(RATE, 1, ctypes.byref(error))
        if error.value != 0:
            raise RuntimeError(f"opus_decoder_create failed: {error.value}")
        self.frame = frame
        self.out = np.zeros(frame, np.float32)

    def decode(self, packet: bytes | None) -> np.ndarray:
        pointer = self.out.ctypes.data_as(ctypes.POINTER(ctypes.c_float))
        n = self.lib.opus_decode_float(self.state, packet, len(packet) if packet else 0, pointer, self.frame, 0)
        if n != self.frame:
            raise RuntimeError(f"opus_decode_float returned {n}")
        return self.out.copy()

    def close(self) -> None:
        self.lib.opus_decoder_destroy(self.state)


def opus_packets(audio: np.ndarray, kbps: float, frame: int) -> list[bytes]:
    """One libopus packet a 20 ms frame (PyAV's encoder: VoIP mode, as `codec.baselines.opus`)."""
    codec = OpusCodec(kbps, RATE)
    packets: list[bytes] = []
    for t in range(audio.size // frame + 4):
        chunk = np.zeros(frame, np.float32)
        piece = audio[t * frame : (t + 1) * frame]
        chunk[: piece.size] = piece
        packets.extend(codec.encode(chunk))
    return packets


def opus_decode(packets: list[bytes], lost: np.ndarray, frame: int) -> np.ndarray:
    """libopus's decoder over the packets, asked to conceal those `lost` marks."""
    decoder = _LibOpusDecoder(frame)
    try:
        return np.concatenate([decoder.decode(None if t < lost.size and lost[t] else p) for t, p in enumerate(packets)])
    finally:
        decoder.close()


def opus_delay(decoded: np.ndarray, reference: np.ndarray, max_lag: int = 1000) -> int:
    """libopus's delay (look-ahead) by cross-correlation with the input."""
    n = min(reference.size, decoded.size - max_lag)
    return int(np.argmax(np.correlate(decoded[: n + max_lag - 1], reference[:n], "valid")))


class _Coder:
    """The default model: codes per clip (offline: the encoder is causal, streaming gives the
    same), and the call's frame decoder (ONNX engine) that the concealers drive frame by frame."""

    def __init__(self, layers: int) -> None:
        from codec.engine import frame_decoder
        from codec.weights import load_model

        self.model, model_id = load_model(None, MODEL)
        self.model.eval()
        self.layers = layers
        self.hop = self.model.cfg.hop
        self.decoder = frame_decoder(self.model, model_id, "onnx")

    def codes(self, audio: np.ndarray) -> np.ndarray:
        x = torch.from_numpy(audio[: audio.size // self.hop * self.hop].astype(np.float32))[None]
        return self.model.encode(x, self.layers)[0].numpy()  # [K, T]

    def neural(self, predictor: LatentPredictor, fade: float, hold: int) -> NeuralConcealer:
        quantizer = self.model.quantizer
        return NeuralConcealer(self.hop, StreamingPredictor(predictor), quantizer.table.numpy(), self.model.cfg.codebook_size, fade=fade, hold=hold)


def conceal(decoder, codes: np.ndarray, lost: np.ndarray, concealer: FrameConcealer, reach: int = FOLLOWING_REACH) -> np.ndarray:
    """Play a clip's frames through a concealer as `receiver.incoming` does (from a fresh decoder).
    The nearest later frame that arrived, up to `reach` frames on, is handed to the concealer
    with its distance, as the playout buffer does when it holds that frame (a call's buffer of a
    packet or more); `reach` 0: never."""
    decoder.reset()
    out = []
    arrived = set(np.flatnonzero(~lost).tolist())
    for t, gone in enumerate(lost):
        if not gone:
            out.append(concealer.received(decoder, codes[:, t]))
            continue
        distance = nearest_later(t, arrived)
        distance = distance if distance <= reach else 0
        out.append(concealer.missing(decoder, codes[:, t + distance], distance) if distance else concealer.missing(decoder))
    return np.concatenate(out)


def _pesq(reference: np.ndarray, decoded: np.ndarray) -> float:
    from pesq import pesq

    n = min(reference.size, decoded.size)
    return float(pesq(RATE, reference[:n].astype(np.float64), decoded[:n].astype(np.float64), "wb"))


def _scores(reference: np.ndarray, decoded: np.ndarray) -> tuple[float, float]:
    from pystoi import stoi

    n = min(reference.size, decoded.size)
    return _pesq(reference, decoded), float(stoi(reference[:n].astype(np.float64), decoded[:n].astype(np.float64), RATE, extended=False))


def _load(path: Path) -> np.ndarray:
    from codec.audio_io import load_audio

    return load_audio(path, RATE)[0].astype(np.float32)


def benchmark(
    clips: list[np.ndarray], layers: int, predictor: LatentPredictor, fade: float, hold: int, patterns=PATTERNS, opus: bool = True, reach: int = FOLLOWING_REACH
) -> list[Row]:
    coder = _Coder(layers)
    kbps = layers * coder.model.cfg.bits_per_code * RATE / coder.hop / 1000
    scores: dict[tuple[str, str], list[tuple[float, ...]]] = {}
    for index, audio in enumerate(clips):
        codes = coder.codes(audio)
        frames = codes.shape[1]
        clean = audio[: frames * coder.hop]
        nolo = conceal(coder.decoder, codes, np.zeros(frames, bool), RepeatConcealer(coder.hop))
        pesq_c, stoi_c = _scores(clean, nolo)
        scores.setdefault(("none", "codec"), []).append((0.0, pesq_c, stoi_c, 5.0, 1.0))
        packets = opus_packets(clean, kbps, coder.hop) if opus else []
        if opus:
            opus_full = opus_decode(packets, np.zeros(0, bool), coder.hop)
            delay = opus_delay(opus_full, clean)
            opus_clean = opus_full[delay : delay + clean.size]
            pesq_o, stoi_o = _scores(clean, opus_clean)
            scores.setdefault(("none", "opus"), []).append((0.0, pesq_o, stoi_o, 5.0, 1.0))
        for p, pattern in enumerate(patterns):
            lost = loss_pattern(pattern, frames, seed=1000 * index + p)
            outputs = {
                "repeat": (conceal(coder.decoder, codes, lost, RepeatConcealer(coder.hop)), nolo),
                "neural": (conceal(coder.decoder, codes, lost, coder.neural(predictor, fade, hold), reach), nolo),
            }
            if opus:
                outputs["opus"] = (opus_decode(packets, lost, coder.hop)[delay : delay + clean.size], opus_clean)
            for name, (played, reference) in outputs.items():
                scores.setdefault((pattern, name), []).append((float(lost.mean()), *_scores(clean, played), *_scores(reference, played)))
    rows = []
    for (pattern, name), values in scores.items():
        m = np.mean(np.array(values), axis=0)
        rows.append(Row(pattern, name, round(float(m[0]), 4), *(round(float(v), 3) for v in m[1:])))
    return rows


def training_clips(data: Path, count: int, seconds: float) -> list[np.ndarray]:
    """`count` clips cut evenly from the builder's held-out speech (for tuning, not the dev clips)."""
    pcm = np.load(data / "speech_val.npy", mmap_mode="r")
    n = int(seconds * RATE)
    starts = np.linspace(0, pcm.size - n, count).astype(int)
    return [pcm[s : s + n].astype(np.float32) / 32768.0 for s in starts]


class _Replay:
    """A frame decoder that plays back frame `t` of a recording, whatever it is asked to decode:
    tuning decodes each clip once unfaded and replays it under every fade (the decoder's state
    after a faded-out gap, where the real concealer stops feeding it, is the one approximation)."""

    def __init__(self, frames: np.ndarray) -> None:
        self.frames = frames
        self.t = 0

    def decode(self, codes: np.ndarray, denoise: float = 0.0) -> np.ndarray:
        return self.frames[self.t]

    def decode_latent(self, latent: np.ndarray, denoise: float = 0.0) -> np.ndarray:
        return self.frames[self.t]

    def reset(self) -> None:
        self.t = 0

    def close(self) -> None:
        pass  # nothing held


def tune(
    data: Path,
    layers: int,
    predictor: LatentPredictor,
    fades: list[float],
    holds: list[int],
    count: int,
    patterns: tuple[str, ...] = PATTERNS,
    reach: int = FOLLOWING_REACH,
) -> list[tuple[float, int, float]]:
    """Mean PESQ-WB of the neural concealer over `patterns` on `count` held-out training clips, per
    (fade, hold); the concealer aims at later frames up to `reach` on, as in `benchmark`."""
    coder = _Coder(layers)
    cases = []
    for index, audio in enumerate(training_clips(data, count, 6.0)):
        codes = coder.codes(audio)
        for p, pattern in enumerate(patterns):
            lost = loss_pattern(pattern, codes.shape[1], seed=1000 * index + p)
            unfaded = conceal(coder.decoder, codes, lost, coder.neural(predictor, 1.0, 0), reach)
            cases.append((audio[: unfaded.size], codes, lost, unfaded.reshape(-1, coder.hop)))
    results = []
    for hold in holds:
        for fade in fades:
            pesqs = []
            for clean, codes, lost, frames in cases:
                replay, concealer, out = _Replay(frames), coder.neural(predictor, fade, hold), []
                for t, gone in enumerate(lost):
                    replay.t = t
                    out.append(concealer.missing(replay) if gone else concealer.received(replay, codes[:, t]))
                pesqs.append(_pesq(clean, np.concatenate(out)))
            results.append((fade, hold, float(np.mean(pesqs))))
            print(f"fade {fade} hold {hold}: mean PESQ-WB {results[-1][2]:.3f}", flush=True)
    return results


def frame_costs(layers: int, predictor: LatentPredictor, frames: int = 500) -> dict[str, float]:
    """Milliseconds a frame: one predictor step, one refinement of a guess towards a later frame
    (the straight path without a refiner), one ONNX decoder step (the call's default engine)."""
    from codec.engine import frame_decoder
    from codec.weights import load_model

    torch.set_num_threads(1)
    model, model_id = load_model(None, MODEL)
    model.eval()
    decoder = frame_decoder(model, model_id, "onnx")
    codes = np.zeros((layers, 1), np.int64)
    stream, latent = StreamingPredictor(predictor), np.zeros(predictor.cfg.latent_dim, np.float32)
    for _ in range(20):
        decoder.decode(codes)
    start = time.perf_counter()
    for _ in range(frames):
        decoder.decode(codes)
    decode_ms = 1000 * (time.perf_counter() - start) / frames
    for _ in range(20):
        stream.step(latent, False)
    start = time.perf_counter()
    for _ in range(frames):
        latent = stream.step(latent, True)
    predict_ms = 1000 * (time.perf_counter() - start) / frames
    later = latent.copy()
    start = time.perf_counter()
    for _ in range(frames):
        stream.refine(latent, later, 2)
    refine_ms = 1000 * (time.perf_counter() - start) / frames
    decoder.close()
    return {"predictor_ms": round(predict_ms, 3), "refine_ms": round(refine_ms, 3), "decoder_ms": round(decode_ms, 3), "frame_ms": 1000 * 320 / RATE}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.concealment", description=__doc__.split("\n")[0])
    parser.add_argument("folder", type=Path, nargs="?", default=DEV_CLIPS)
    parser.add_argument("--layers", type=int, default=46, help="stages coded (46: 9.2 kbps, Opus at the same rate)")
    parser.add_argument("--predictor", type=Path, default=DEFAULT_PREDICTOR)
    parser.add_argument("--fade", type=float, default=NEURAL_FADE)
    parser.add_argument("--hold", type=int, default=NEURAL_HOLD)
    parser.add_argument("--tune", type=Path, default=None, metavar="DATA", help="pick fade/hold on DATA/speech_val.npy clips instead")
    parser.add_argument("--tune-clips", type=int, default=6)
    parser.add_argument("--cost", action="store_true", help="time a predictor step and a decoder step")
    parser.add_argument("--patterns", nargs="+", default=list(PATTERNS), help=f"default {' '.join(PATTERNS)}; packetsN-P: P %% of N-frame packets lost")
    parser.add_argument("--no-opus", action="store_true", help="the codec's concealers only")
    parser.add_argument(
        "--reach", type=int, default=FOLLOWING_REACH, help=f"the farthest later frame the neural concealer is handed (default {FOLLOWING_REACH}, the playout's)"
    )
    parser.add_argument("--no-lookahead", action="store_true", help="the neural concealer never sees a later frame (--reach 0)")
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args(argv)
    try:
        for name in args.patterns:
            loss_pattern(name, 10, 0)
    except ValueError as error:  # an unknown or malformed pattern name
        print(f"error: {error}", file=sys.stderr)
        return 2
    reach = 0 if args.no_lookahead else args.reach
    if not 0 <= reach <= FOLLOWING_REACH:
        print(f"error: --reach must be 0..{FOLLOWING_REACH}", file=sys.stderr)
        return 2
    torch.set_num_threads(1)
    try:
        predictor = load_predictor(args.predictor)
    except FileNotFoundError:
        print(f"error: {args.predictor}: no such predictor weights", file=sys.stderr)
        return 2
    if args.cost:
        print(json.dumps(frame_costs(args.layers, predictor)))
        return 0
    if args.tune is not None:
        if not (args.tune / "speech_val.npy").exists():
            print(f"error: {args.tune / 'speech_val.npy'} not found", file=sys.stderr)
            return 2
        fades, holds = [1.0, 0.95, 0.9, 0.8, 0.7, 0.6, 0.5], [0, 1, 2]
        results = tune(args.tune, args.layers, predictor, fades, holds, args.tune_clips, tuple(args.patterns), reach=reach)
        fade, hold, pesq = max(results, key=lambda r: r[2])
        print(f"best: fade {fade} hold {hold} (mean PESQ-WB {pesq:.3f} over {', '.join(args.patterns)})")
        return 0
    try:
        clips = [_load(p) for p in clip_paths(args.folder)]
    except Exception as error:  # a missing folder or unreadable clip: one line, not a traceback
        print(f"error: {error}", file=sys.stderr)
        return 2
    rows = benchmark(clips, args.layers, predictor, args.fade, args.hold, tuple(args.patterns), opus=not args.no_opus, reach=reach)
    if args.json:
        print(json.dumps([asdict(r) for r in rows], indent=1))
        return 0
    table = MarkdownTable(["pattern", "concealer", "lost", "PESQ-WB", "STOI", "PESQ-WB vs no loss", "STOI vs no loss"])
    cells = (
        [r.pattern, r.concealer, f"{100 * r.loss:.1f} %", f"{r.pesq_clean:.2f}", f"{r.stoi_clean:.3f}", f"{r.pesq_nolo:.2f}", f"{r.stoi_nolo:.3f}"]
        for r in rows
    )
    print(table.render(cells))
    return 0


if __name__ == "__main__":
    sys.exit(main())
