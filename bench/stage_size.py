"""Which codebook size buys the most quality per bit past a model's last stage:
`python -m bench.stage_size --data data [--bits 4 6 8] [--extra-bits 24 48 72 96 120]`.

Fits extra residual stages of each size on the training speech's latents (as `python -m
codec extend-stages` does, `codec.stage_fit`) and compares them at equal added bits a
frame: held-out relative residual energy (the data set's `speech_val` stream) and PESQ-WB /
STOI of the dev clips decoded through the model's stages plus the extra ones. Several
minutes on one thread (the 8-bit fit dominates).
"""

from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np
import torch

from codec.audio_io import load_audio
from codec.soundstream import SoundStreamCodec
from codec.stage_fit import collect_latents, fit_stages, residual_after
from codec.train.evaluate import clip_paths, metrics
from codec.weights import load_model

DEV_CLIPS = Path(__file__).resolve().parents[2] / "shared" / "dev-clips" / "speech"


def main() -> None:
    parser = argparse.ArgumentParser(prog="python -m bench.stage_size", description=__doc__.split("\n")[0])
    parser.add_argument("--data", type=Path, default=Path("data"))
    parser.add_argument("--clips", type=Path, default=DEV_CLIPS)
    parser.add_argument("--model", default="soundstream16k-lyra2", help="the shipped model to extend (default: Lyra's 46 stages)")
    parser.add_argument("--bits", type=int, nargs="+", default=[4, 6, 8])
    parser.add_argument("--extra-bits", type=int, nargs="+", default=[24, 48, 72, 96, 120], help="added bits a frame to compare at")
    parser.add_argument("--frames", type=int, default=150_000)
    parser.add_argument("--iterations", type=int, default=15)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    torch.set_num_threads(1)
    model, model_id = load_model(None, args.model)
    if not isinstance(model, SoundStreamCodec):
        parser.error(f"{args.model}: only soundstream-family models take extra stages")
    gen = torch.Generator().manual_seed(args.seed)
    speech = np.load(args.data / "speech.npy", mmap_mode="r")
    held = np.load(args.data / "speech_val.npy", mmap_mode="r")
    train_latents = collect_latents(model, speech, args.frames, gen)
    held_latents = collect_latents(model, held, max(2000, args.frames // 10), gen)
    energy = float(held_latents.pow(2).sum(-1).mean())
    train_res, held_res = residual_after(model.quantizer, train_latents), residual_after(model.quantizer, held_latents)
    clips = [load_audio(p, model.cfg.sample_rate)[0] for p in clip_paths(args.clips)]
    base_kbps = model.cfg.kbps_for_layers(model.cfg.n_quantizers)
    frame_rate = model.cfg.frame_rate
    print(f"{model_id}: {train_latents.shape[0]} training frames, {held_latents.shape[0]} held-out, {len(clips)} dev clips of {args.clips}\n")
    print("| stage bits | added bits/frame | kbps | stages | held-out residual energy | PESQ-WB | STOI |")
    print("|---|---|---|---|---|---|---|")
    for bits in args.bits:
        usable = [b for b in args.extra_bits if b % bits == 0]
        fit = fit_stages(train_res, held_res, energy, bits, max(usable) // bits, args.iterations, gen)
        for extra in usable:
            stages = extra // bits
            scores = [_clip_scores(model, clip, fit.codebooks[:stages]) for clip in clips]
            pesq, stoi = np.mean(np.array(scores), axis=0)
            kbps = base_kbps + extra * frame_rate / 1000
            print(f"| {bits} | {extra} | {kbps:g} | {stages} | {fit.heldout_relative_mse[stages]:.4f} | {pesq:.3f} | {stoi:.3f} |", flush=True)


@torch.no_grad()
def _clip_scores(model, audio: np.ndarray, books: torch.Tensor) -> tuple[float, float]:
    hop = model.cfg.hop
    n = len(audio) // hop * hop
    x = torch.from_numpy(np.ascontiguousarray(audio[:n], dtype=np.float32))[None]
    latent = model.encoder(x, 0.0)
    quantized = model.quantizer.decode(model.quantizer.encode(latent, model.cfg.n_quantizers))
    residual = latent[0] - quantized[0]
    for book in books:
        chosen = book[((residual[:, None, :] - book[None]) ** 2).sum(-1).argmin(-1)]
        quantized = quantized + chosen[None]
        residual = residual - chosen
    m = metrics(audio[:n], model.decoder(quantized, 0.0)[0].numpy())
    return m["pesq_wb"], m["stoi"]


if __name__ == "__main__":
    main()
