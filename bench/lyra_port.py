"""How far the converted default model is from Lyra v2's TFLite graph: `python -m bench.lyra_port [FOLDER]`.

For each clip of FOLDER (default `../shared/dev-clips/speech`) the interpreter runs Lyra's
three models frame by frame (46 stages); our encoder then codes the same audio and our decoder
decodes the interpreter's own dequantized features. Prints a markdown table: the per-frame
maximum difference of the encoder's features (median and worst frame, and the mean absolute
difference beside the features' rms) and of the decoder's samples, and whether our quantizer
picks the interpreter's indices. Needs ai-edge-litert and the models (`codec.baselines.lyra`).
"""

from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np
import torch

from codec.audio_io import load_audio
from codec.baselines.lyra import FRAME, LyraCodec
from codec.markdown_table import MarkdownTable
from codec.train.evaluate import clip_paths
from codec.weights import load_model

DEV_CLIPS = Path(__file__).resolve().parents[2] / "shared" / "dev-clips" / "speech"


def main() -> None:
    parser = argparse.ArgumentParser(prog="python -m bench.lyra_port", description=__doc__.split("\n")[0])
    parser.add_argument("folder", type=Path, nargs="?", default=DEV_CLIPS)
    args = parser.parse_args()
    torch.set_num_threads(1)
    model, model_id = load_model(name="soundstream16k-lyra2")
    print(f"{model_id} against Lyra v2's TFLite models, {args.folder}\n")
    table = MarkdownTable(
        ["clip", "frames", "encoder max, median frame", "worst frame", "mean abs / rms", "decoder max, median frame", "worst frame", "RVQ indices equal"]
    )
    print(table.head())
    for path in clip_paths(args.folder):
        audio, _ = load_audio(path, 16_000)
        frames = audio.size // FRAME
        audio = audio[: frames * FRAME]
        lyra = LyraCodec(9.2)
        feat_rows: list[np.ndarray] = []
        indices: list[np.ndarray] = []
        dequantized_rows: list[np.ndarray] = []
        decoded: list[np.ndarray] = []
        for t in range(frames):
            f = lyra.encoder(input_audio=audio[t * FRAME : (t + 1) * FRAME][None])["output_0"]
            idx = lyra.quantize(input_frames=f, num_quantizers=np.array(46, np.int32))["output_0"]
            q = lyra.dequantize(encoding_indices=idx)["output_0"]
            feat_rows.append(f[0, 0])
            indices.append(idx[:, 0, 0])
            dequantized_rows.append(q[0, 0])
            decoded.append(lyra.decoder(input_audio=q)["output_0"][0])
        feats, dequantized = np.stack(feat_rows), np.stack(dequantized_rows)
        with torch.no_grad():
            ours = model.encoder(torch.from_numpy(audio)[None])[0].numpy()
            out = model.decoder(torch.from_numpy(dequantized)[None])[0].numpy().reshape(frames, FRAME)
            codes = model.quantizer.encode(torch.from_numpy(feats)[None], 46)[0].numpy().T
        enc = np.abs(ours - feats)
        dec = np.abs(out - np.stack(decoded)).max(axis=1)
        same = np.array_equal(codes, np.stack(indices))
        print(
            table.row(
                [
                    path.stem,
                    frames,
                    f"{np.median(enc.max(axis=1)):.2f}",
                    f"{enc.max():.2f}",
                    f"{enc.mean():.2f} / {np.sqrt((feats**2).mean()):.1f}",
                    f"{np.median(dec):.4f}",
                    f"{dec.max():.4f}",
                    "yes" if same else "no",
                ]
            ),
            flush=True,
        )


if __name__ == "__main__":
    main()
