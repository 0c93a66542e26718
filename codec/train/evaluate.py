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


ENGINES = ("torch", "onnx", "onnx-int8")


def codec_roundtrip(model, model_id: str, audio: np.ndarray, kbps: float, engine: str = "torch") -> np.ndarray:
    """Encode and decode a whole clip: offline in PyTorch, or frame by frame in onnxruntime."""
    hop = model.cfg.hop
    layers = model.cfg.layers_for_kbps(kbps)
    frames = -(-audio.size // hop)
    x = np.zeros((1, frames * hop), np.float32)
    x[0, : audio.size] = audio
    if engine == "torch":
        with torch.inference_mode():
            y = model.decode(model.encode(torch.from_numpy(x), layers)).numpy()
    else:
        from codec.onnx_runtime import OnnxStreamingDecoder, OnnxStreamingEncoder

        int8 = engine == "onnx-int8"
        encoder = OnnxStreamingEncoder(model, model_id, int8=int8)
        decoder = OnnxStreamingDecoder(model, model_id, int8=int8)
        y = np.concatenate([decoder.decode(encoder.encode(x[:, t * hop : (t + 1) * hop], layers)) for t in range(frames)], axis=1)
    return y[0, : audio.size]


def evaluate(model, model_id: str, clips: list[Path], kbps: list[float], opus_kbps: list[float], engine: str = "torch", progress: bool = True) -> list[dict]:
    from tqdm import tqdm

    rows: dict[tuple[str, float], list[dict[str, float]]] = {}
    for path in tqdm(clips, disable=not progress, desc="clips"):
        audio, _ = load_audio(path, RATE)
        for k in kbps:
            name = "ours" if engine == "torch" else f"ours ({engine})"
            rows.setdefault((name, model.cfg.kbps_for_layers(model.cfg.layers_for_kbps(k))), []).append(metrics(audio, codec_roundtrip(model, model_id, audio, k, engine)))
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


def evaluate_folder(clips: Path, kbps: list[float], opus_kbps: list[float], out: Path | None, weights: Path | None, engine: str = "torch", progress: bool = True) -> list[dict]:
    from codec.weights import load_model

    torch.set_num_threads(1)
    model, model_id = load_model(weights) if weights else load_model()
    results = evaluate(model, model_id, clip_paths(clips), kbps, opus_kbps, engine, progress)
    table = markdown_table(results)
    print(f"model {model_id} on {clips}\n\n{table}")
    if out is not None:
        out.mkdir(parents=True, exist_ok=True)
        (out / "table.md").write_text(table + "\n")
        (out / "results.json").write_text(json.dumps({"model_id": model_id, "clips": str(clips), "results": results}, indent=1))
        plot(results, out / "plot.png")
    return results
