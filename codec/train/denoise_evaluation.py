"""`python -m codec eval CLIPS --noise-snr 0 5 10 15`: the denoise table.

Each clip is mixed with noise the training never saw (`codec/train/unseen_noise.py`) at each
SNR, and also scored clean. One block of rows per input condition, every score against the
clean clip:

- input (no codec): the noisy (or clean) input itself;
- ours, ours +denoise: our codec with the denoise switch off and on;
- ENHANCER (no codec), ENHANCER -> ours: a dedicated enhancer alone, and run before our codec
  with the switch off (DeepFilterNet 3, WebRTC's noise suppressor: `codec/baselines/`);
- opus, lyra v2 at the rates asked for, on the same input.

Columns: PESQ-WB, STOI, DNSMOS P.835 (OVRL, SIG, BAK). Under the table, the issue's two goals
measured on this run: the switch within 0.2 DNSMOS OVRL of DeepFilterNet 3 before our codec,
and on clean speech a cost of at most 0.05 PESQ-WB.
"""

from __future__ import annotations

import json
from collections import Counter
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np
import torch

from codec.audio_io import load_audio
from codec.baselines.enhancers import Enhancer, make_enhancer
from codec.baselines.lyra import DEFAULT_MODELS as DEFAULT_LYRA_MODELS
from codec.baselines.lyra import LyraCodec, lyra_roundtrip
from codec.baselines.opus import opus_roundtrip
from codec.errors import CodecError
from codec.markdown_table import MarkdownTable
from codec.train.evaluate import RATE, Scorer, clip_paths, codec_roundtrip, mean_scores, ours_name, require_dnsmos
from codec.train.unseen_noise import UnseenNoise

INPUT = "input (no codec)"
OVRL_GOAL = 0.2  # ours +denoise at most this far below DeepFilterNet 3 -> ours in DNSMOS OVRL
CLEAN_PESQ_GOAL = 0.05  # the switch's cost on clean speech in PESQ-WB, at most


@dataclass(frozen=True)
class DenoiseRow:
    """One system on one input condition: scores averaged over the clips."""

    snr_db: float | None  # None: the clean clips
    system: str
    kbps: float | None  # None: no codec
    clips: int
    scores: dict[str, float]  # pesq_wb, stoi, mel_distance, si_sdr, dnsmos_ovrl/sig/bak (wer with --asr)


@dataclass(frozen=True)
class DenoiseResult:
    model_id: str
    clips: int
    noise_kinds: dict[str, dict[str, int]]  # per SNR ("5 dB"): how many clips got each kind of noise
    rows: list[DenoiseRow]


def condition(snr_db: float | None) -> str:
    return "clean" if snr_db is None else f"{snr_db:g} dB"


def evaluate_denoise(
    model,
    model_id: str,
    clips: Sequence[np.ndarray],
    snrs: Sequence[float],
    kbps: Sequence[float],
    enhancers: Sequence[Enhancer],
    score: Scorer,
    music: Sequence[np.ndarray] = (),
    engine: str = "torch",
    opus_kbps: Sequence[float] = (),
    lyra_kbps: Sequence[float] = (),
    lyra_models: Path = DEFAULT_LYRA_MODELS,
    progress: bool = False,
) -> DenoiseResult:
    """Every system on every clip, clean and at each SNR."""
    from tqdm import tqdm

    noise = UnseenNoise(clips, music, RATE)
    ours = ours_name(engine)
    rates = {k: model.cfg.kbps_for_layers(model.cfg.layers_for_kbps(k)) for k in kbps}
    scores: dict[tuple[float | None, str, float | None], list[dict[str, float]]] = {}
    kinds: dict[str, Counter[str]] = {}
    conditions: list[float | None] = [None, *dict.fromkeys(snrs)]  # an SNR asked for twice is one block
    with tqdm(total=len(clips) * len(conditions), disable=not progress, desc="clips x conditions") as bar:
        for i, clean in enumerate(clips):
            said = score.reading(clean)
            for snr in conditions:
                if snr is None:
                    audio = clean
                else:
                    noisy = noise.mix(i, snr)
                    audio = noisy.audio
                    kinds.setdefault(condition(snr), Counter())[noisy.kind] += 1

                def add(system: str, rate: float | None, decoded: np.ndarray) -> None:
                    scores.setdefault((snr, system, rate), []).append(score(clean, decoded, said))

                add(INPUT, None, audio)
                for k, rate in rates.items():
                    add(ours, rate, codec_roundtrip(model, model_id, audio, k, engine, 0.0))
                    add(f"{ours} +denoise", rate, codec_roundtrip(model, model_id, audio, k, engine, 1.0))
                for enhancer in enhancers:
                    enhanced = enhancer.enhance(audio, RATE)
                    add(f"{enhancer.name} (no codec)", None, enhanced)
                    for k, rate in rates.items():
                        add(f"{enhancer.name} -> {ours}", rate, codec_roundtrip(model, model_id, enhanced, k, engine, 0.0))
                for k in opus_kbps:
                    add("opus", k, opus_roundtrip(audio, k, RATE)[0])
                for k in lyra_kbps:
                    add("lyra v2", k, lyra_roundtrip(audio, k, lyra_models))
                bar.update()
    rows = [DenoiseRow(snr, system, rate, len(values), mean_scores(values)) for (snr, system, rate), values in scores.items()]
    return DenoiseResult(model_id, len(clips), {c: dict(sorted(k.items())) for c, k in kinds.items()}, rows)


def markdown_table(rows: Sequence[DenoiseRow]) -> str:
    """One table, a block of rows per input condition (in the order measured)."""
    asr = any("wer" in r.scores for r in rows)
    columns = ["input", "system", "kbps", "PESQ-WB", "STOI", "DNSMOS ovrl", "sig", "bak"] + (["ASR WER %"] if asr else [])
    cells = []
    for r in rows:
        s = r.scores
        line = [condition(r.snr_db), r.system, None if r.kbps is None else f"{r.kbps:g}", f"{s['pesq_wb']:.2f}", f"{s['stoi']:.3f}"]
        line += [_digits(s, "dnsmos_ovrl"), _digits(s, "dnsmos_sig"), _digits(s, "dnsmos_bak")]  # "-" when scored without DNSMOS
        if asr:
            line.append(_digits(s, "wer", 100, 1))
        cells.append(line)
    return MarkdownTable(columns, right=frozenset(columns[2:])).render(cells)


def _digits(scores: dict[str, float], metric: str, scale: float = 1.0, places: int = 2) -> str | None:
    return f"{scale * scores[metric]:.{places}f}" if metric in scores else None


def goal_lines(rows: Sequence[DenoiseRow], engine: str = "torch") -> list[str]:
    """The issue's two goals, measured on these rows (nothing where a row they need is missing)."""
    ours = ours_name(engine)
    by_key = {(r.snr_db, r.system, r.kbps): r.scores for r in rows}
    lines = []
    for rate in sorted({r.kbps for r in rows if r.system == ours and r.kbps is not None}):
        gaps = []
        for snr in dict.fromkeys(r.snr_db for r in rows if r.snr_db is not None):
            on, dfn = by_key.get((snr, f"{ours} +denoise", rate)), by_key.get((snr, f"deepfilternet3 -> {ours}", rate))
            if on is not None and dfn is not None and "dnsmos_ovrl" in on:
                gap = on["dnsmos_ovrl"] - dfn["dnsmos_ovrl"]
                gaps.append(f"{condition(snr)} {gap:+.2f} ({'met' if gap >= -OVRL_GOAL else 'missed'})")
        if gaps:
            lines.append(f"{rate:g} kbps, DNSMOS OVRL of ours +denoise minus deepfilternet3 -> ours (goal >= -{OVRL_GOAL}): " + ", ".join(gaps))
        off, on = by_key.get((None, ours, rate)), by_key.get((None, f"{ours} +denoise", rate))
        if off is not None and on is not None:
            cost = off["pesq_wb"] - on["pesq_wb"]
            verdict = "met" if cost <= CLEAN_PESQ_GOAL else "missed"
            lines.append(f"{rate:g} kbps, clean speech: the switch costs {cost:.2f} PESQ-WB (goal <= {CLEAN_PESQ_GOAL}: {verdict})")
    return lines


def default_music(clips: Path) -> Path | None:
    """The dev clips' music (drascula-music, reserved for evaluation) beside the speech folder."""
    sibling = clips.parent / "music"
    return sibling if sibling.is_dir() else None


def denoise_model_name(weights: Path | None, name: str | None) -> str | None:
    """The model to score: the one asked for, else the default if it has the switch, else the
    first shipped model that has it (None: leave the choice to `load_model`)."""
    from codec.weights import available_models, describe_model

    if name is not None:
        return name
    candidates = [n for n in available_models(weights) if describe_model(n, weights).get("config", {}).get("denoise_conditioning")]
    return candidates[0] if candidates else None


def denoise_folder(
    clips: Path,
    snrs: Sequence[float],
    kbps: Sequence[float],
    enhancer_names: Sequence[str],
    out: Path | None = None,
    weights: Path | None = None,
    model_name: str | None = None,
    music: Path | None = None,
    engine: str = "torch",
    progress: bool = True,
    asr: bool = False,
    opus_kbps: Sequence[float] = (),
    lyra_kbps: Sequence[float] = (),
    lyra_models: Path = DEFAULT_LYRA_MODELS,
) -> DenoiseResult:
    """Check everything that can fail before the first clip is coded, run, print the table."""
    from codec.weights import load_model

    enhancers = [make_enhancer(name) for name in dict.fromkeys(enhancer_names)]
    require_dnsmos()
    paths = clip_paths(clips)
    music = music if music is not None else default_music(clips)
    music_paths = clip_paths(music) if music is not None else []
    for k in lyra_kbps:
        LyraCodec(k, lyra_models)
    torch.set_num_threads(1)
    model, model_id = load_model(weights, denoise_model_name(weights, model_name))
    if not model.cfg.denoise_conditioning:
        raise CodecError(f"--noise-snr scores the denoise switch, which model {model_id} does not have (choose one with --model; `python -m codec models`)")
    score = Scorer(dnsmos=True, asr=asr)
    audio = [load_audio(p, RATE)[0] for p in paths]
    tracks = [load_audio(p, RATE)[0] for p in music_paths]
    result = evaluate_denoise(model, model_id, audio, snrs, kbps, enhancers, score, tracks, engine, opus_kbps, lyra_kbps, lyra_models, progress)
    table = markdown_table(result.rows)
    sources = ["babble (other clips of the folder)"] + ([f"music ({music})"] if tracks else []) + ["street (synthesised)"]
    kinds = "; ".join(f"{c}: " + ", ".join(f"{k} x{n}" for k, n in counts.items()) for c, counts in result.noise_kinds.items())
    print(f"model {model_id} on {clips} ({len(paths)} clips), noise the training never saw: {', '.join(sources)}\nnoise per SNR: {kinds}\n")
    print(table + "\n\n" + "\n".join(goal_lines(result.rows, engine)))
    if out is not None:
        out.mkdir(parents=True, exist_ok=True)
        (out / "table.md").write_text(table + "\n")
        (out / "results.json").write_text(json.dumps({"clips": str(clips)} | asdict(result), indent=1))
    return result
