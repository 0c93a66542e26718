"""Train the latent predictor (`codec.concealment`): `python -m codec.train.concealment --data data --out runs/plc`.

Data: the data builder's speech (`data/speech.npy`, validation `data/speech_val.npy`), encoded
once by `--model` (default soundstream16k-lyra2: 46 stages; soundstream16k-lyra2x has the same
encoder and decoder and 80 stages) into latents and codes, cached in `OUT/latents.npz`. A
training example is `--frames` consecutive frames: the inputs are the latents as a call would
receive them (the codes through a random `--min-stages`..all stages; `--floor-share` of the
examples at `--min-stages` exactly, where a call's rate controller sits under loss), the
targets the encoder's latents one frame ahead. Each example gets its own loss pattern (a
two-state Gilbert-Elliott chain with a random loss rate and mean burst length), and the
predictor runs through it as a receiver would: on a lost frame it is fed its own last
prediction. So one pass trains both the teacher-forced prediction (after real frames) and the
rollouts inside a burst. Loss: MSE in the normalised latent space, frames whose target was lost
weighted `--lost-weight`.

Resumes from `OUT/checkpoint.pt` (model, optimiser, step, random states); logs `OUT/log.csv`;
writes `OUT/predictor.pt` (float32 weights for `codec.concealment.load_predictor`).
"""

from __future__ import annotations

import argparse
import csv
import sys
import time
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np
import torch

from codec.concealment import LatentPredictor, PredictorConfig, save_predictor
from codec.errors import CodecError
from codec.train.checkpoint import SmallRun
from codec.train.data import missing_speech

MODEL = "soundstream16k-lyra2"
CHUNK_S = 20  # seconds encoded at a time


@dataclass(frozen=True)
class TrainConfig:
    steps: int = 1200
    batch: int = 32
    frames: int = 40
    lr: float = 2e-3
    hidden: int = 256
    minutes: float = 60.0  # of training speech encoded (evenly spread over the stream)
    val_minutes: float = 4.0
    lost_weight: float = 4.0
    max_loss: float = 0.3
    max_burst: float = 4.0
    model: str = MODEL  # the codec whose codes the inputs are quantised by
    min_stages: int = 8
    floor_share: float = 0.0  # of the examples at `min_stages` (a rate controller at its floor)
    eval_every: int = 250
    seed: int = 0


def _nearest_codes(latent: np.ndarray, books: np.ndarray) -> np.ndarray:
    """latent [N, D], codebooks [K, C, D] -> codes [N, K] (residual VQ, matrix-product distances:
    training data need not be bit-exact with the reference order)."""
    residual = latent.astype(np.float32).copy()
    codes = np.empty((latent.shape[0], books.shape[0]), np.uint8)
    for k, book in enumerate(books):
        idx = ((book**2).sum(-1)[None] - 2 * residual @ book.T).argmin(-1)
        codes[:, k] = idx
        residual -= book[idx]
    return codes


def encode_stream(pcm: np.ndarray, minutes: float, model, hop: int) -> tuple[np.ndarray, np.ndarray]:
    """int16 speech -> (latents [N, D] float16, codes [N, K] uint8), `minutes` of evenly spaced chunks."""
    chunk = CHUNK_S * 16_000
    starts = np.arange(0, max(1, pcm.size - chunk), chunk)
    take = max(1, min(starts.size, int(round(minutes * 60 / CHUNK_S))))
    starts = starts[np.linspace(0, starts.size - 1, take).astype(int)]
    books = model.quantizer.codebooks.numpy()
    latents, codes = [], []
    for start in starts:
        x = torch.from_numpy(pcm[start : start + chunk].astype(np.float32) / 32768.0)
        x = x[: x.numel() // hop * hop][None]
        with torch.no_grad():
            z = model.encoder(x)[0].numpy()
        latents.append(z.astype(np.float16))
        codes.append(_nearest_codes(z, books))
    return np.concatenate(latents), np.concatenate(codes)


def cached_latents(data: Path, out: Path, cfg: TrainConfig) -> dict[str, np.ndarray]:
    path = out / "latents.npz"
    if path.exists():
        with np.load(path) as f:
            arrays = dict(f)
        cached = str(arrays.pop("model", MODEL))  # caches from before `--model` hold lyra2's codes
        if cached != cfg.model:
            raise ValueError(f"{path} holds {cached}'s codes, not {cfg.model}'s: use another --out")
        return arrays
    from codec.soundstream import SoundStreamCodec
    from codec.weights import load_model

    model, _ = load_model(None, cfg.model)
    if not isinstance(model, SoundStreamCodec):
        raise ValueError(f"{cfg.model}: the predictor learns a soundstream codec's latents")
    model.eval()
    hop = model.cfg.hop
    train_z, train_c = encode_stream(np.load(data / "speech.npy", mmap_mode="r"), cfg.minutes, model, hop)
    val_z, val_c = encode_stream(np.load(data / "speech_val.npy", mmap_mode="r"), cfg.val_minutes, model, hop)
    books = model.quantizer.codebooks.numpy()
    out.mkdir(parents=True, exist_ok=True)
    # Named one by one: mypy matches a `**dict` against savez's `allow_pickle: bool` too.
    np.savez(path, train_z=train_z, train_c=train_c, val_z=val_z, val_c=val_c, books=books, model=np.array(cfg.model))
    return {"train_z": train_z, "train_c": train_c, "val_z": val_z, "val_c": val_c, "books": books}


def loss_patterns(rng: np.random.Generator, batch: int, frames: int, max_loss: float, max_burst: float) -> np.ndarray:
    """[batch, frames] bool: per row a Gilbert-Elliott chain with loss rate U(0, max_loss) and
    mean burst length U(1, max_burst) frames."""
    rate = rng.uniform(0, max_loss, batch)
    burst = rng.uniform(1, max_burst, batch)
    leave = 1 / burst  # bad -> good
    enter = rate * leave / np.maximum(1 - rate, 1e-6)  # good -> bad, for that stationary rate
    lost = np.zeros((batch, frames), bool)
    state = rng.random(batch) < rate
    for t in range(frames):
        lost[:, t] = state
        u = rng.random(batch)
        state = np.where(state, u >= leave, u < enter)
    return lost


Batch = tuple[torch.Tensor, torch.Tensor, torch.Tensor]


def batch_of(arrays: dict[str, np.ndarray], split: str, rng: np.random.Generator, cfg: TrainConfig) -> Batch:
    """(inputs [B, T, D] as received, targets [B, T, D] = the encoder's latents, lost [B, T])."""
    z, c, books = arrays[f"{split}_z"], arrays[f"{split}_c"], arrays["books"]
    starts = rng.integers(0, z.shape[0] - cfg.frames, cfg.batch)
    index = starts[:, None] + np.arange(cfg.frames)[None]
    stages = rng.integers(cfg.min_stages, books.shape[0] + 1, cfg.batch)
    stages[rng.random(cfg.batch) < cfg.floor_share] = cfg.min_stages
    codes = c[index].astype(np.int64)  # [B, T, K]
    vectors = books[np.arange(books.shape[0])[None, None, :], codes]  # [B, T, K, D]
    keep = np.arange(books.shape[0])[None, None, :, None] < stages[:, None, None, None]
    inputs = (vectors * keep).sum(2, dtype=np.float32)
    lost = loss_patterns(rng, cfg.batch, cfg.frames, cfg.max_loss, cfg.max_burst)
    return torch.from_numpy(inputs), torch.from_numpy(z[index].astype(np.float32)), torch.from_numpy(lost)


def predictor_loss(
    model: LatentPredictor, inputs: torch.Tensor, targets: torch.Tensor, lost: torch.Tensor, lost_weight: float
) -> tuple[torch.Tensor, torch.Tensor]:
    """(weighted MSE of every next-frame prediction, MSE on the lost frames alone)."""
    predictions = model(inputs, lost)[:, :-1]
    error = ((predictions - model.normalise(targets)[:, 1:]) ** 2).mean(-1)
    gone = lost[:, 1:].float()
    weight = 1 + (lost_weight - 1) * gone
    return (error * weight).sum() / weight.sum(), (error * gone).sum() / gone.sum().clamp(min=1)


def train(data: Path, out: Path, cfg: TrainConfig, log_every: int = 50) -> LatentPredictor:
    torch.set_num_threads(1)
    arrays = cached_latents(data, out, cfg)
    torch.manual_seed(cfg.seed)
    model = LatentPredictor(PredictorConfig(latent_dim=arrays["train_z"].shape[1], hidden=cfg.hidden))
    z = arrays["train_z"].astype(np.float32)
    model.mean.copy_(torch.from_numpy(z.mean(0)))
    model.scale.copy_(torch.from_numpy(z.std(0) + 1e-3))
    optimiser = torch.optim.AdamW(model.parameters(), lr=cfg.lr, weight_decay=1e-4)
    schedule = torch.optim.lr_scheduler.CosineAnnealingLR(optimiser, cfg.steps, eta_min=cfg.lr / 20)
    rng = np.random.default_rng(cfg.seed)
    checkpoint = out / "checkpoint.pt"
    run = SmallRun(model, optimiser, schedule, rng)
    step = run.resume(checkpoint)
    # A fixed validation set: the same frames and loss patterns at every evaluation.
    val_cfg = TrainConfig(batch=64, frames=cfg.frames, max_loss=cfg.max_loss, max_burst=cfg.max_burst, min_stages=cfg.min_stages, floor_share=cfg.floor_share)
    val = batch_of(arrays, "val", np.random.default_rng(1234), val_cfg)
    log_path = out / "log.csv"
    fresh = not log_path.exists()
    started = time.monotonic()
    with log_path.open("a", newline="") as f:
        writer = csv.writer(f)
        if fresh:
            writer.writerow(["step", "loss", "lost_mse", "val_lost_mse", "lr", "seconds"])
        running, running_lost, count = 0.0, 0.0, 0
        while step < cfg.steps:
            model.train()
            loss, lost_mse = predictor_loss(model, *batch_of(arrays, "train", rng, cfg), cfg.lost_weight)
            optimiser.zero_grad()
            loss.backward()
            torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
            optimiser.step()
            schedule.step()
            step += 1
            running, running_lost, count = running + loss.item(), running_lost + lost_mse.item(), count + 1
            evaluate = step % cfg.eval_every == 0 or step == cfg.steps
            if step % log_every == 0 or evaluate:
                val_mse = ""
                if evaluate:
                    model.eval()
                    with torch.no_grad():
                        val_mse = f"{predictor_loss(model, *val, cfg.lost_weight)[1].item():.4f}"
                lr, seconds = f"{schedule.get_last_lr()[0]:.2e}", f"{time.monotonic() - started:.0f}"
                writer.writerow([step, f"{running / count:.4f}", f"{running_lost / count:.4f}", val_mse, lr, seconds])
                f.flush()
                running, running_lost, count = 0.0, 0.0, 0
            if evaluate:
                run.save(checkpoint, step)
    model.eval()
    save_predictor(
        model, out / "predictor.pt", {"trained_by": f"python -m codec.train.concealment --data {data} --out {out}", "steps": step, "config": asdict(cfg)}
    )
    return model


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m codec.train.concealment", description=__doc__.split("\n")[0])
    parser.add_argument("--data", type=Path, default=Path("data"), help="the data builder's folder (speech.npy, speech_val.npy)")
    parser.add_argument("--out", type=Path, default=Path("runs/plc"))
    defaults = TrainConfig()
    parser.add_argument("--model", default=MODEL, help=f"the codec whose latents and codes are learnt (default {MODEL})")
    for name in ("steps", "batch", "frames", "hidden", "eval_every", "seed", "min_stages"):
        parser.add_argument(f"--{name.replace('_', '-')}", type=int, default=getattr(defaults, name))
    for name in ("lr", "minutes", "val_minutes", "lost_weight", "max_loss", "max_burst", "floor_share"):
        parser.add_argument(f"--{name.replace('_', '-')}", type=float, default=getattr(defaults, name))
    args = parser.parse_args(argv)
    missing = missing_speech(args.data)
    if missing:
        print(missing, file=sys.stderr)
        return 2
    fields = {k: getattr(args, k) for k in TrainConfig.__dataclass_fields__}
    try:
        train(args.data, args.out, TrainConfig(**fields))
    except (ValueError, CodecError) as error:  # a model that is no soundstream codec, or not shipped
        print(f"error: {error}", file=sys.stderr)
        return 2
    print(f"wrote {args.out / 'predictor.pt'}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
