"""`python -m codec eval`: the model and Opus on a folder of clips at chosen bitrates.

Metrics per clip, averaged: PESQ-WB (ITU-T P.862.2), STOI, log-mel distance, SI-SDR, and
with --dnsmos the DNSMOS P.835 scores (speechmos's ONNX models, offline), with --asr the
word error rate of a speech recogniser against its reading of the original
(`codec/train/intelligibility.py`). Opus runs as
WebRTC runs it for speech (libopus, VoIP, 20 ms, VBR). Prints a markdown table; with --out
also writes results.json and plot.png (quality against kbps). With --noise-snr the denoise
evaluation runs instead (`codec/train/denoise_evaluation.py`).
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import torch

from codec.audio_io import load_audio
from codec.baselines.lyra import DEFAULT_MODELS as DEFAULT_LYRA_MODELS
from codec.baselines.lyra import LyraCodec, lyra_roundtrip
from codec.baselines.opus import opus_roundtrip
from codec.errors import CodecError
from codec.markdown_table import MarkdownTable
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


def metrics(reference: np.ndarray, decoded: np.ndarray, dnsmos: bool = False) -> dict[str, float]:
    from pesq import pesq
    from pystoi import stoi

    n = min(reference.size, decoded.size)
    ref, dec = reference[:n].astype(np.float64), decoded[:n].astype(np.float64)
    r, d = torch.from_numpy(ref).float()[None], torch.from_numpy(dec).float()[None]
    out = {
        "pesq_wb": float(pesq(RATE, ref, dec, "wb")),
        "stoi": float(stoi(ref, dec, RATE, extended=False)),
        "mel_distance": float(log_mel_distance(d, r, RATE)),
        "si_sdr": float(_si_sdr(dec, ref)),
    }
    if dnsmos:
        from speechmos import dnsmos as model

        scores = model.run(np.clip(dec, -1, 1).astype(np.float32), sr=RATE)
        out |= {"dnsmos_ovrl": float(scores["ovrl_mos"]), "dnsmos_sig": float(scores["sig_mos"]), "dnsmos_bak": float(scores["bak_mos"])}
    return out


def require_dnsmos() -> None:
    try:
        import speechmos.dnsmos  # noqa: F401  (it imports librosa and requests)
    except ImportError as exc:
        raise CodecError(f"DNSMOS needs the speechmos and librosa packages (pip install -e '.[eval]'): {exc}") from None


class Scorer:
    """Scores decoded audio against the clean clip: `metrics`, and with `asr` the recogniser's
    word error rate against its reading of the clean clip (`reading`)."""

    def __init__(self, dnsmos: bool = False, asr: bool = False) -> None:
        self.dnsmos = dnsmos
        self._transcribe = None
        if asr:
            from codec.train.intelligibility import Transcriber

            self._transcribe = Transcriber()  # a missing recogniser fails here, before any clip is coded

    def reading(self, clean: np.ndarray) -> str | None:
        """What the recogniser hears in the clean clip (None without --asr)."""
        return self._transcribe(clean) if self._transcribe is not None else None

    def __call__(self, clean: np.ndarray, decoded: np.ndarray, said: str | None) -> dict[str, float]:
        out = metrics(clean, decoded, self.dnsmos)
        if self._transcribe is not None and said is not None:  # the clean clip's words, heard with the same model
            from codec.train.intelligibility import word_error_rate

            out["wer"] = word_error_rate(said, self._transcribe(decoded))
        return out


def _si_sdr(estimate: np.ndarray, reference: np.ndarray) -> float:
    reference = reference - reference.mean()
    estimate = estimate - estimate.mean()
    target = reference * (estimate @ reference) / (reference @ reference + 1e-12)
    return 10 * np.log10((target @ target) / ((estimate - target) @ (estimate - target) + 1e-12) + 1e-12)


def codec_roundtrip(model, model_id: str, audio: np.ndarray, kbps: float, engine: str = "torch", denoise: float = 0.0) -> np.ndarray:
    """Encode and decode a whole clip: offline in PyTorch, or frame by frame in onnxruntime."""
    hop = model.cfg.hop
    layers = model.cfg.layers_for_kbps(kbps)
    frames = -(-audio.size // hop)
    x = np.zeros((1, frames * hop), np.float32)
    x[0, : audio.size] = audio
    if engine == "torch":
        with torch.inference_mode():
            y = model.decode(model.encode(torch.from_numpy(x), layers, denoise), denoise=denoise).numpy()
    else:
        from codec.onnx_runtime import OnnxStreamingDecoder, OnnxStreamingEncoder

        int8 = engine == "onnx-int8"
        encoder = OnnxStreamingEncoder(model, model_id, int8=int8)
        decoder = OnnxStreamingDecoder(model, model_id, int8=int8)
        y = np.concatenate([decoder.decode(encoder.encode(x[:, t * hop : (t + 1) * hop], layers, denoise), denoise=denoise) for t in range(frames)], axis=1)
    return y[0, : audio.size]


def evaluate(
    model,
    model_id: str,
    clips: list[Path],
    kbps: list[float],
    opus_kbps: list[float],
    engine: str = "torch",
    progress: bool = True,
    dnsmos: bool = False,
    asr: bool = False,
    lyra_kbps: Sequence[float] = (),
    lyra_models: Path = DEFAULT_LYRA_MODELS,
) -> list[dict]:
    from tqdm import tqdm

    rows: dict[tuple[str, float], list[dict[str, float]]] = {}
    score = Scorer(dnsmos, asr)
    for path in tqdm(clips, disable=not progress, desc="clips"):
        clean, _ = load_audio(path, RATE)
        said = score.reading(clean)
        for k in kbps:
            decoded = codec_roundtrip(model, model_id, clean, k, engine)
            rows.setdefault((ours_name(engine), model.cfg.kbps_for_layers(model.cfg.layers_for_kbps(k))), []).append(score(clean, decoded, said))
        for k in opus_kbps:
            decoded, _ = opus_roundtrip(clean, k, RATE)
            rows.setdefault(("opus", k), []).append(score(clean, decoded, said))
        for k in lyra_kbps:
            decoded = lyra_roundtrip(clean, k, lyra_models)
            rows.setdefault(("lyra v2", k), []).append(score(clean, decoded, said))
    return [{"codec": name, "kbps": k, "clips": len(values)} | mean_scores(values) for (name, k), values in rows.items()]


def ours_name(engine: str) -> str:
    return "ours" if engine == "torch" else f"ours ({engine})"


def mean_scores(values: list[dict[str, float]]) -> dict[str, float]:
    """Each metric's mean over the clips."""
    return {m: float(np.mean([v[m] for v in values])) for m in values[0]}


def markdown_table(results: list[dict]) -> str:
    dnsmos, asr = "dnsmos_ovrl" in results[0], "wer" in results[0]
    columns = ["codec", "kbps", "PESQ-WB", "STOI", "mel dist", "SI-SDR dB"] + (["DNSMOS ovrl", "sig", "bak"] if dnsmos else []) + (["ASR WER %"] if asr else [])
    rows = []
    for r in sorted(results, key=lambda r: (r["codec"], r["kbps"])):
        cells = [r["codec"], f"{r['kbps']:g}", f"{r['pesq_wb']:.2f}", f"{r['stoi']:.3f}", f"{r['mel_distance']:.3f}", f"{r['si_sdr']:.1f}"]
        if dnsmos:
            cells += [f"{r['dnsmos_ovrl']:.2f}", f"{r['dnsmos_sig']:.2f}", f"{r['dnsmos_bak']:.2f}"]
        if asr:
            cells.append(f"{100 * r['wer']:.1f}")
        rows.append(cells)
    return MarkdownTable(columns).render(rows)


def plot(results: list[dict], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, 2, figsize=(9, 3.5))
    for name in sorted({r["codec"] for r in results if r["kbps"] > 0}):
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


def evaluate_folder(
    clips: Path,
    kbps: list[float],
    opus_kbps: list[float],
    out: Path | None,
    weights: Path | None,
    engine: str = "torch",
    progress: bool = True,
    dnsmos: bool = False,
    asr: bool = False,
    lyra_kbps: Sequence[float] = (),
    lyra_models: Path = DEFAULT_LYRA_MODELS,
    model_name: str | None = None,
) -> list[dict]:
    from codec.weights import load_model

    if dnsmos:
        require_dnsmos()
    torch.set_num_threads(1)
    model, model_id = load_model(weights, model_name)
    if asr:
        Scorer(asr=True)  # a missing recogniser fails here, before any clip is coded
    for k in lyra_kbps:
        LyraCodec(k, lyra_models)  # so do missing Lyra models or a rate Lyra has not
    results = evaluate(model, model_id, clip_paths(clips), kbps, opus_kbps, engine, progress, dnsmos, asr, lyra_kbps, lyra_models)
    table = markdown_table(results)
    print(f"model {model_id} on {clips}\n\n{table}")
    if out is not None:
        out.mkdir(parents=True, exist_ok=True)
        (out / "table.md").write_text(table + "\n")
        (out / "results.json").write_text(json.dumps({"model_id": model_id, "clips": str(clips), "results": results}, indent=1))
        plot(results, out / "plot.png")
    return results
