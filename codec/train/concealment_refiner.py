"""Train the latent predictor's guess refiner through the frozen decoder:
`python -m codec.train.concealment_refiner --data data --out runs/plc-refiner`.

The predictor's GRU (`--predictor`, default the shipped one) is an MSE estimate of the next
latent: smooth, regressed towards the mean, and it decodes muffled. The refiner
(`codec.concealment.GuessRefiner`) maps the GRU's state, its prediction and, where the playout
buffer holds one, a later frame's latent and distance, to the latent actually decoded. The GRU
is frozen, so a stream without losses and the predictions themselves stay the shipped ones.

An example is `--frames` frames of the data builder's speech, coded as a call receives them (a
random `--min-stages`..all stages, `codec.train.concealment.batch_of`), with a Gilbert-Elliott
loss pattern (none in the first `--warmup` frames: the decoder starts from silence). A lost
frame is given the next frame that arrived within `reach` frames, except with probability
`--hide` (the buffer does not hold it yet). The receiver's rollout (`LatentPredictor.played`) is
decoded by the frozen decoder and compared with the decoding of the same frames without loss
under the project's multi-resolution log-magnitude + log-mel loss (as the denoise switch's
decoded loss), plus `--latent-weight` times the lost frames' latent MSE (normalised space).

Resumes from `OUT/checkpoint.pt`; logs `OUT/log.csv`; writes `OUT/predictor.pt` (the GRU and
the refiner, for `codec.concealment.load_predictor`).
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

from codec.concealment import DEFAULT_PREDICTOR, LatentPredictor, PredictorConfig, load_predictor, save_predictor
from codec.errors import CodecError
from codec.train.checkpoint import SmallRun
from codec.train.data import missing_speech
from codec.train.concealment import MODEL, TrainConfig, batch_of, cached_latents
from codec.train.losses import ReconstructionLoss


@dataclass(frozen=True)
class RefinerConfig:
    steps: int = 1500
    batch: int = 16
    frames: int = 32
    warmup: int = 6  # first frames never lost
    lr: float = 1e-3
    refiner: int = 256
    reach: int = 4
    hide: float = 0.3
    latent_weight: float = 0.1
    minutes: float = 60.0
    val_minutes: float = 4.0
    max_loss: float = 0.3
    max_burst: float = 4.0
    model: str = MODEL
    min_stages: int = 8
    eval_every: int = 250
    seed: int = 0


def later_distances(lost: np.ndarray, reach: int, hide: float, rng: np.random.Generator) -> np.ndarray:
    """lost [B, T] -> [B, T] int: for a lost frame, how many frames on the next received one is
    (at most `reach`; 0: none, or hidden with probability `hide`); 0 for a received frame."""
    distance = np.zeros(lost.shape, np.int64)
    frames = lost.shape[1]
    for step in range(reach, 0, -1):  # the nearest wins: written last
        ahead = np.zeros_like(lost)
        ahead[:, : frames - step] = ~lost[:, step:]
        distance[lost & ahead] = step
    distance[rng.random(lost.shape) < hide] = 0
    return distance


def refiner_model(predictor: Path, cfg: RefinerConfig) -> LatentPredictor:
    """The predictor at `predictor` (its GRU, head and statistics; a refiner it has is dropped)
    with a fresh refiner; everything but the refiner frozen."""
    base = load_predictor(predictor)
    model = LatentPredictor(PredictorConfig(**{**asdict(base.cfg), "refiner": cfg.refiner, "reach": cfg.reach}))
    kept = {name: tensor for name, tensor in base.state_dict().items() if not name.startswith("refiner.")}
    missing = [name for name in model.load_state_dict(kept, strict=False).missing_keys if not name.startswith("refiner.")]
    if missing:
        raise ValueError(f"{predictor}: not a latent predictor of this shape (missing {', '.join(missing)})")
    for name, parameter in model.named_parameters():
        parameter.requires_grad_(name.startswith("refiner."))
    return model


class RefinerLoss:
    def __init__(self, codec, latent_weight: float) -> None:
        self.decoder = codec.decoder
        self.terms = ReconstructionLoss(codec.cfg.sample_rate, complex_sizes=(), weights={"complex": 0.0, "wave": 0.0})
        self.latent_weight = latent_weight

    def __call__(
        self, model: LatentPredictor, inputs: torch.Tensor, targets: torch.Tensor, lost: torch.Tensor, distance: torch.Tensor
    ) -> dict[str, torch.Tensor]:
        played = model.played(inputs, lost, distance)
        with torch.no_grad():
            reference = self.decoder(inputs)
        decoded = self.terms(self.decoder(played), reference)["total"]
        gone = lost.float()
        error = ((model.normalise(played) - model.normalise(targets)) ** 2).mean(-1)
        latent = (error * gone).sum() / gone.sum().clamp(min=1)
        return {"loss": decoded + self.latent_weight * latent, "decoded": decoded, "latent": latent}


def _batch(arrays, split: str, rng: np.random.Generator, cfg: RefinerConfig, batch: int) -> tuple[torch.Tensor, ...]:
    frames_cfg = TrainConfig(batch=batch, frames=cfg.frames, max_loss=cfg.max_loss, max_burst=cfg.max_burst, min_stages=cfg.min_stages)
    inputs, targets, lost = batch_of(arrays, split, rng, frames_cfg)
    lost[:, : cfg.warmup] = False
    distance = later_distances(lost.numpy(), cfg.reach, cfg.hide, rng)
    return inputs, targets, lost, torch.from_numpy(distance)


def train(data: Path, out: Path, cfg: RefinerConfig, predictor: Path = DEFAULT_PREDICTOR, log_every: int = 50) -> LatentPredictor:
    from codec.soundstream import SoundStreamCodec
    from codec.weights import load_model

    torch.set_num_threads(1)
    arrays = cached_latents(data, out, TrainConfig(model=cfg.model, minutes=cfg.minutes, val_minutes=cfg.val_minutes))
    codec, _ = load_model(None, cfg.model)
    if not isinstance(codec, SoundStreamCodec):
        raise ValueError(f"{cfg.model}: the refiner decodes through a soundstream codec")
    codec.eval()
    for parameter in codec.parameters():
        parameter.requires_grad_(False)
    torch.manual_seed(cfg.seed)
    model = refiner_model(predictor, cfg)
    trained = [p for p in model.parameters() if p.requires_grad]
    optimiser = torch.optim.AdamW(trained, lr=cfg.lr, weight_decay=1e-4)
    schedule = torch.optim.lr_scheduler.CosineAnnealingLR(optimiser, cfg.steps, eta_min=cfg.lr / 20)
    loss_of = RefinerLoss(codec, cfg.latent_weight)
    rng = np.random.default_rng(cfg.seed)
    checkpoint = out / "checkpoint.pt"
    run = SmallRun(model, optimiser, schedule, rng)
    step = run.resume(checkpoint)
    val = _batch(arrays, "val", np.random.default_rng(1234), cfg, 64)  # the same frames and losses every time
    log_path = out / "log.csv"
    fresh = not log_path.exists()
    started = time.monotonic()
    with log_path.open("a", newline="") as f:
        writer = csv.writer(f)
        if fresh:
            writer.writerow(["step", "loss", "decoded", "latent", "val_decoded", "val_latent", "lr", "seconds"])
        if step == 0:  # the start (the straight path alone), for scale
            model.eval()
            with torch.no_grad():
                start = loss_of(model, *val)
            writer.writerow([0, "", "", "", f"{start['decoded'].item():.4f}", f"{start['latent'].item():.4f}", f"{cfg.lr:.2e}", "0"])
        sums, count = {"loss": 0.0, "decoded": 0.0, "latent": 0.0}, 0
        while step < cfg.steps:
            model.train()
            losses = loss_of(model, *_batch(arrays, "train", rng, cfg, cfg.batch))
            optimiser.zero_grad()
            losses["loss"].backward()
            torch.nn.utils.clip_grad_norm_(trained, 1.0)
            optimiser.step()
            schedule.step()
            step += 1
            for key in sums:
                sums[key] += losses[key].item()
            count += 1
            evaluate = step % cfg.eval_every == 0 or step == cfg.steps
            if step % log_every == 0 or evaluate:
                val_decoded = val_latent = ""
                if evaluate:
                    model.eval()
                    with torch.no_grad():
                        checked = loss_of(model, *val)
                    val_decoded, val_latent = f"{checked['decoded'].item():.4f}", f"{checked['latent'].item():.4f}"
                means = [f"{sums[key] / count:.4f}" for key in ("loss", "decoded", "latent")]
                writer.writerow([step, *means, val_decoded, val_latent, f"{schedule.get_last_lr()[0]:.2e}", f"{time.monotonic() - started:.0f}"])
                f.flush()
                sums, count = dict.fromkeys(sums, 0.0), 0
            if evaluate:
                run.save(checkpoint, step)
    model.eval()
    trained_by = f"python -m codec.train.concealment_refiner --data {data} --out {out} --predictor {predictor}"
    save_predictor(model, out / "predictor.pt", {"trained_by": trained_by, "steps": step, "config": asdict(cfg)})
    return model


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m codec.train.concealment_refiner", description=__doc__.split("\n")[0])
    parser.add_argument("--data", type=Path, default=Path("data"), help="the data builder's folder (speech.npy, speech_val.npy)")
    parser.add_argument("--out", type=Path, default=Path("runs/plc-refiner"))
    parser.add_argument("--predictor", type=Path, default=DEFAULT_PREDICTOR, help="the trained predictor whose GRU is kept (default: the shipped one)")
    defaults = RefinerConfig()
    parser.add_argument("--model", default=MODEL, help=f"the codec whose latents, codes and decoder are used (default {MODEL})")
    for name in ("steps", "batch", "frames", "warmup", "refiner", "reach", "min_stages", "eval_every", "seed"):
        parser.add_argument(f"--{name.replace('_', '-')}", type=int, default=getattr(defaults, name))
    for name in ("lr", "hide", "latent_weight", "minutes", "val_minutes", "max_loss", "max_burst"):
        parser.add_argument(f"--{name.replace('_', '-')}", type=float, default=getattr(defaults, name))
    args = parser.parse_args(argv)
    missing = missing_speech(args.data)
    if missing:
        print(missing, file=sys.stderr)
        return 2
    if not args.predictor.exists():
        print(f"error: {args.predictor} not found", file=sys.stderr)
        return 2
    fields = {k: getattr(args, k) for k in RefinerConfig.__dataclass_fields__}
    try:
        train(args.data, args.out, RefinerConfig(**fields), args.predictor)
    except (ValueError, CodecError) as error:
        print(f"error: {error}", file=sys.stderr)
        return 2
    print(f"wrote {args.out / 'predictor.pt'}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
