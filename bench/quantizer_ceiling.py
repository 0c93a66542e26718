"""How much the quantizer costs: `python -m bench.quantizer_ceiling [FOLDER] [--weights DIR]`.

Decodes each clip of FOLDER (default `../shared/dev-clips/speech`) from the encoder's latent
as it is (no quantizer: the autoencoder's ceiling) and through 24, 12 and 6 RVQ layers, offline
with the PyTorch model, and prints a markdown table of mean PESQ-WB and STOI against the input.
If the ceiling is where the quantized rows are, more codebook work buys nothing: the encoder
and decoder are what limit quality (docs/training.md). About a minute on 7 clips.
"""

from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np
import torch

from codec.audio_io import load_audio
from codec.command_line import model_option
from codec.markdown_table import MarkdownTable
from codec.train.evaluate import clip_paths, metrics
from codec.weights import load_model

DEV_CLIPS = Path(__file__).resolve().parents[2] / "shared" / "dev-clips" / "speech"
LAYERS = (24, 12, 6)


def main() -> None:
    parser = argparse.ArgumentParser(prog="python -m bench.quantizer_ceiling", description=__doc__.split("\n")[0], parents=[model_option()])
    parser.add_argument("folder", type=Path, nargs="?", default=DEV_CLIPS)
    parser.add_argument("--weights", type=Path, default=None, help="a weights folder (default: the shipped models)")
    parser.add_argument("--layers", type=int, nargs="+", default=list(LAYERS), help=f"stage counts to decode through (default {LAYERS})")
    args = parser.parse_args()
    torch.set_num_threads(1)
    model, model_id = load_model(args.weights, args.model)
    model.eval()
    hop = model.cfg.hop
    kbps = model.cfg.bits_per_code * model.cfg.sample_rate / hop / 1000  # a layer's
    label = {n: f"{n} layers ({n * kbps:g} kbps)" for n in args.layers}
    rows: dict[str, list[tuple[float, float]]] = {name: [] for name in ("no quantizer", *(label[n] for n in args.layers))}
    for path in clip_paths(args.folder):
        audio, _ = load_audio(path, model.cfg.sample_rate)
        n = len(audio) // hop * hop
        x = torch.from_numpy(np.ascontiguousarray(audio[:n], dtype=np.float32))[None]
        with torch.no_grad():
            latent = model.encoder(x, 0.0)
            outs = {"no quantizer": model.decoder(latent, 0.0)}
            for layers in args.layers:
                quantized = model.quantizer(latent, torch.full((1,), layers))[0]
                outs[label[layers]] = model.decoder(quantized, 0.0)
        for name, y in outs.items():
            m = metrics(audio[:n], y[0].numpy())
            rows[name].append((m["pesq_wb"], m["stoi"]))
    print(f"{model_id} on {len(rows['no quantizer'])} clips of {args.folder}\n")
    means = {name: np.mean(np.array(scores), axis=0) for name, scores in rows.items()}
    print(MarkdownTable(["decoded from", "PESQ-WB", "STOI"]).render([name, f"{pesq:.3f}", f"{stoi:.3f}"] for name, (pesq, stoi) in means.items()))


if __name__ == "__main__":
    main()
