"""`python -m codec eval`: the model and Opus on a folder of clips at chosen bitrates.

Metrics per clip, averaged: PESQ-WB (ITU-T P.862.2), STOI, log-mel distance, SI-SDR.
Opus runs as WebRTC runs it for speech (libopus, VoIP, 20 ms, VBR). Prints a markdown
table; with --out also writes results.json and plot.png (quality against kbps).
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import torch

from codec.audio_io import load_audio
from codec.baselines.opus import opus_roundtrip
from codec.errors import CodecError
from codec.train.losses import log_mel_distance

RATE = 16_000


def clip_paths(folder: Path) -> list[Path]:
    if not folder.is_dir():
        raise CodecError(f"{folder}: no such folder")
    base = folder / "16k" if (folder / "16k").is_dir() else folder
    paths = sorted(p for p in base.rglob("*") if p.suffix.lower() in (".wav", ".flac", ".ogg"))
    if not paths:
        raise CodecError(f"{folder}: no audio clips")
    return paths


def metrics(reference: np.ndarray, decoded: np.ndarray) -> dict[str, float]:
    from pesq import pesq
    from pystoi import stoi

    n = min(reference.size, decoded.size)
    ref, dec = reference[:n].astype(np.float64), decoded[:n].astype(np.float64)
    r, d = torch.from_numpy(ref).float()[None], torch.from_numpy(dec).float()[None]
    return {
        "pesq_wb": float(pesq(RATE, ref, dec, "wb")),
        "stoi": float(stoi(ref, dec, RATE, extended=False)),
        "mel_distance": float(log_mel_distance(d, r, RATE)),
        "si_sdr": float(_si_sdr(dec, ref)),
    }


def _si_sdr(estimate: np.ndarray, reference: np.ndarray) -> float:
    reference = reference - reference.mean()
    estimate = estimate - estimate.mean()
    target = reference * (estimate @ reference) / (reference @ reference + 1e-12)
    return 10 * np.log10((target @ target) / ((estimate - target) @ (estimate - target) + 1e-12) + 1e-12)


def codec_roundtrip(model, audio: np.ndarray, kbps: float) -> np.ndarray:
    hop = model.cfg.hop
    frames = -(-audio.size // hop)
    x = torch.zeros(1, frames * hop)
    x[0, : audio.size] = torch.from_numpy(audio)
    with torch.inference_mode():
        y = model.decode(model.encode(x, model.cfg.layers_for_kbps(kbps)))
    return y[0, : audio.size].numpy()


def evaluate(model, clips: list[Path], kbps: list[float], opus_kbps: list[float], progress: bool = True) -> list[dict]:
    from tqdm import tqdm

    rows: dict[tuple[str, float], list[dict[str, float]]] = {}
    for path in tqdm(clips, disable=not progress, desc="clips"):
        audio, _ = load_audio(path, RATE)
        for k in kbps:
            rows.setdefault(("ours", model.cfg.kbps_for_layers(model.cfg.layers_for_kbps(k))), []).append(metrics(audio, codec_roundtrip(model, audio, k)))
        for k in opus_kbps:
            decoded, _ = opus_roundtrip(audio, k, RATE)
            rows.setdefault(("opus", k), []).append(metrics(audio, decoded))
    return [
        {"codec": name, "kbps": k, "clips": len(values)} | {m: float(np.mean([v[m] for v in values])) for m in values[0]}
        for (name, k), values in rows.items()
    ]


def markdown_table(results: list[dict]) -> str:
    lines = ["| codec | kbps | PESQ-WB | STOI | mel dist | SI-SDR dB |", "|---|---|---|---|---|---|"]
    for r in sorted(results, key=lambda r: (r["codec"], r["kbps"])):
        lines.append(f"| {r['codec']} | {r['kbps']:g} | {r['pesq_wb']:.2f} | {r['stoi']:.3f} | {r['mel_distance']:.3f} | {r['si_sdr']:.1f} |")
    return "\n".join(lines)


def plot(results: list[dict], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, 2, figsize=(9, 3.5))
    for name in sorted({r["codec"] for r in results}):
        pts = sorted((r["kbps"], r["pesq_wb"], r["stoi"]) for r in results if r["codec"] == name)
        axes[0].plot([p[0] for p in pts], [p[1] for p in pts], "o-", label=name)
        axes[1].plot([p[0] for p in pts], [p[2] for p in pts], "o-", label=name)
    for ax, label in zip(axes, ("PESQ-WB", "STOI")):
        ax.set_xlabel("kbps")
        ax.set_ylabel(label)
        ax.grid(alpha=0.3)
        ax.legend()
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def evaluate_folder(clips: Path, kbps: list[float], opus_kbps: list[float], out: Path | None, weights: Path | None, progress: bool = True) -> list[dict]:
    from codec.weights import load_model

    torch.set_num_threads(1)
    model, model_id = load_model(weights) if weights else load_model()
    results = evaluate(model, clip_paths(clips), kbps, opus_kbps, progress)
    table = markdown_table(results)
    print(f"model {model_id} on {clips}\n\n{table}")
    if out is not None:
        out.mkdir(parents=True, exist_ok=True)
        (out / "table.md").write_text(table + "\n")
        (out / "results.json").write_text(json.dumps({"model_id": model_id, "clips": str(clips), "results": results}, indent=1))
        plot(results, out / "plot.png")
    return results
