"""`python -m codec train`: reconstruction training with quantizer dropout, resumable exactly.

Schedule: `warmup_steps` as a plain autoencoder (no quantizer), then k-means initialises
every codebook on the encoder's real output and training continues with a random number
of RVQ layers per example. Checkpoints hold model, optimizer, step and every random
state, so a resumed run continues the very same sequence of batches and updates.
"""

from __future__ import annotations

import csv
import math
import os
import random
import time
import tomllib
from pathlib import Path
from typing import Literal

import numpy as np
import torch
from pydantic import BaseModel, ConfigDict, Field

from codec.config import CodecConfig
from codec.model import Codec
from codec.train.augment import NoiseMixer, band_limit, coloured_noise, random_eq, si_sdr
from codec.train.checkpoint import save_atomically
from codec.train.data import CropSampler
from codec.train.discriminators import Discriminators, discriminator_loss, generator_losses
from codec.train.distributed import DistributedContext
from codec.train.losses import ReconstructionLoss, log_mel_distance
from codec.train.reparam import whiten_latent


class TrainConfig(BaseModel):
    model_config = ConfigDict(extra="forbid")

    codec: CodecConfig = Field(default_factory=CodecConfig)
    data_dir: Path = Path("data")
    out_dir: Path = Path("runs/base")
    init_from: Path | None = None  # a checkpoint whose same-shaped tensors start a new run
    # After init_from: re-express the latent on its principal axes scaled by variance^-alpha
    # (codec/train/reparam.py; the model's function is unchanged, the codebooks restart).
    whiten_latent: float | None = None
    steps: int = 20_000
    # Stop after this many seconds of training (counted across resumes), whichever of steps
    # and time comes first; the lr schedule then follows the larger share of either, so a
    # run given an hour on a fast machine still anneals.
    time_budget_s: float | None = None
    batch_size: int = 16
    crop_seconds: float = 1.0
    lr: float = 6e-4
    lr_final: float = 1e-4
    # Linear lr ramp over the first steps. A run started with init_from has a fresh AdamW,
    # whose first updates are about lr in size whatever the gradient: at 3e-4 they undid a
    # trained model's quality (val mel 0.36 -> 0.45 in 300 steps) before it could improve.
    lr_ramp_steps: int = 0
    warmup_steps: int = 100
    commit_weight: float = 0.25
    # "all" (the shipped run): every active layer's |z - q_k|^2; "final": only the residual
    # the example's last layer leaves (see codec/quantization.py and docs/training.md).
    commitment: Literal["all", "final"] = "all"
    loss_weights: dict[str, float] = Field(default_factory=dict)
    gan_start_step: int | None = None  # adversarial training from this step on (None: never)
    # The critics train alone for this many steps from gan_start_step before their losses
    # reach the generator: critics that start untrained pull a trained generator off its
    # spectra with gradients that say nothing yet (docs/training.md, the CPU adversarial run).
    disc_warmup_steps: int = 0
    disc_lr: float = 2e-4
    disc_channels: int = 16
    adv_weight: float = 1.0
    feature_weight: float = 3.0
    eq_probability: float = 0.0  # random +-6 dB EQ on this share of examples
    band_limit_probability: float = 0.0  # random low-pass (3.4-8 kHz) on this share
    denoise_fraction: float = 0.0  # share of examples mixed with noise (the denoise switch's data)
    low_rate_fraction: float = 0.5
    low_rate_layers: tuple[int, int] = (2, 14)
    threads: int = 2
    device: str = "auto"  # "auto": CUDA if available, else CPU
    seed: int = 0
    val_every: int = 500
    val_clips: int = 16
    ckpt_every: int = 500
    log_every: int = 10

    @classmethod
    def from_toml(cls, path: Path) -> "TrainConfig":
        return cls.model_validate(tomllib.loads(path.read_text()))


class Trainer:
    def __init__(self, cfg: TrainConfig, progress: bool = True) -> None:
        self.cfg = cfg
        self.dist = DistributedContext.from_env(cfg.device)
        self.device = self.dist.device
        self.progress = progress and self.dist.is_main
        torch.manual_seed(cfg.seed)
        random.seed(cfg.seed)
        np.random.seed(cfg.seed)
        self.model = Codec(cfg.codec).to(self.device)
        self.model.quantizer.commitment = cfg.commitment
        if cfg.init_from is not None:
            self._init_from(cfg.init_from)
        if cfg.whiten_latent is not None:
            self._whiten(cfg, cfg.whiten_latent)
        self.loss = ReconstructionLoss(cfg.codec.sample_rate, weights=cfg.loss_weights)
        self.optimizer = torch.optim.AdamW(self.model.parameters(), lr=cfg.lr, betas=(0.8, 0.99), weight_decay=1e-4)
        # Each rank draws its own batches.
        self.generator = torch.Generator().manual_seed(cfg.seed + 1000 * self.dist.rank)
        self.discriminators: Discriminators | None = None
        self.disc_optimizer: torch.optim.Optimizer | None = None
        if cfg.gan_start_step is not None:
            self.discriminators = Discriminators(channels=cfg.disc_channels).to(self.device)
            self.disc_optimizer = torch.optim.AdamW(self.discriminators.parameters(), lr=cfg.disc_lr, betas=(0.5, 0.9))
        self.train_model = self._parallel(self.model)
        self.train_discriminators = self._parallel(self.discriminators) if self.discriminators else None
        crop = int(round(cfg.crop_seconds * cfg.codec.sample_rate / cfg.codec.hop)) * cfg.codec.hop
        speech = np.load(cfg.data_dir / "speech.npy", mmap_mode="r")
        self.sampler = CropSampler(speech, crop, self.generator)
        self.mixer: NoiseMixer | None = None
        if cfg.denoise_fraction > 0:
            music_path = cfg.data_dir / "music.npy"
            music = np.load(music_path, mmap_mode="r") if music_path.exists() else None
            self.mixer = NoiseMixer(speech, music, self.generator)
        self.val_batch = self._validation_batch(crop).to(self.device)
        self.elapsed = 0.0  # training seconds before this process (kept across resumes)
        self._started = time.time()
        if self.mixer is not None:
            noise = coloured_noise(self.val_batch.shape[0], crop, torch.Generator().manual_seed(99))
            rms = lambda t: t.pow(2).mean(-1, keepdim=True).sqrt()  # noqa: E731
            self._val_noise = (noise * rms(self.val_batch.cpu()) / rms(noise)).to(self.device)
        self.step = 0
        cfg.out_dir.mkdir(parents=True, exist_ok=True)
        self.ckpt_path = cfg.out_dir / "checkpoint.pt"
        self.log_path = cfg.out_dir / "log.csv"

    def _validation_batch(self, crop: int) -> torch.Tensor:
        path = self.cfg.data_dir / "speech_val.npy"
        pcm = np.load(path) if path.exists() else np.load(self.cfg.data_dir / "speech.npy", mmap_mode="r")
        sampler = CropSampler(pcm, crop, torch.Generator().manual_seed(1234))
        return sampler.batch(self.cfg.val_clips, level_db=(-26.0, -26.0))

    def _parallel(self, module: torch.nn.Module) -> torch.nn.Module:
        if self.dist.world_size == 1:
            return module
        from torch.nn.parallel import DistributedDataParallel

        ids = [self.device.index] if self.device.type == "cuda" else None
        return DistributedDataParallel(module, device_ids=ids)

    def _init_from(self, path: Path) -> None:
        """From a training checkpoint or a shipped weights file (codec/weights/*.pt)."""
        blob = torch.load(path, map_location="cpu", weights_only=False)
        state = blob["model"] if "model" in blob else {k: v.float() if v.is_floating_point() else v for k, v in blob["state"].items()}
        own = self.model.state_dict()
        taken = {k: v for k, v in state.items() if k in own and own[k].shape == v.shape}
        self.model.load_state_dict(taken, strict=False)
        if self.dist.is_main:
            print(f"initialised {len(taken)} of {len(own)} tensors from {path}")

    def _whiten(self, cfg: TrainConfig, alpha: float) -> None:
        """Latent statistics from 64 crops of fixed seed, so every rank folds in the same P."""
        crop = int(round(cfg.crop_seconds * cfg.codec.sample_rate / cfg.codec.hop)) * cfg.codec.hop
        speech = np.load(cfg.data_dir / "speech.npy", mmap_mode="r")
        samples = CropSampler(speech, crop, torch.Generator().manual_seed(7)).batch(64).to(self.device)
        variances = whiten_latent(self.model, samples, alpha)
        if self.dist.is_main:
            print(f"latent re-expressed: variances {float(variances.min()):.3g} .. {float(variances.max()):.3g}")

    # ---- checkpoints -----------------------------------------------------------------------------
    def _rng_state(self) -> dict:
        return {"torch": torch.get_rng_state(), "sampler": self.generator.get_state(), "numpy": np.random.get_state(), "python": random.getstate()}

    def save(self) -> None:
        """Every rank calls this (it gathers their random states); rank 0 writes."""
        rng = self.dist.gather(self._rng_state())
        if not self.dist.is_main:
            return
        state = {
            "model": self.model.state_dict(),
            "optimizer": self.optimizer.state_dict(),
            "step": self.step,
            "elapsed": self.elapsed + time.time() - self._started,
            "config": self.cfg.model_dump(mode="json"),
            "discriminators": self.discriminators.state_dict() if self.discriminators else None,
            "disc_optimizer": self.disc_optimizer.state_dict() if self.disc_optimizer else None,
            "rng": rng,
        }
        save_atomically(state, self.ckpt_path)

    def resume(self) -> bool:
        if not self.ckpt_path.exists():
            return False
        state = torch.load(self.ckpt_path, map_location=self.device, weights_only=False)
        self.model.load_state_dict(state["model"])
        self.optimizer.load_state_dict(state["optimizer"])
        if self.discriminators is not None and state.get("discriminators") is not None:
            self.discriminators.load_state_dict(state["discriminators"])
            assert self.disc_optimizer is not None  # made with the discriminators
            self.disc_optimizer.load_state_dict(state["disc_optimizer"])
        self.step = state["step"]
        self.elapsed = state.get("elapsed", 0.0)
        rngs = state["rng"] if isinstance(state["rng"], list) else [state["rng"]]  # one process: a dict
        if len(rngs) != self.dist.world_size:
            raise ValueError(f"checkpoint from {len(rngs)} processes, this run has {self.dist.world_size}")
        rng = rngs[self.dist.rank]
        torch.set_rng_state(rng["torch"].cpu())
        self.generator.set_state(rng["sampler"].cpu())
        np.random.set_state(rng["numpy"])
        random.setstate(rng["python"])
        return True

    # ---- one step --------------------------------------------------------------------------------
    def _layers(self, batch: int) -> torch.Tensor:
        n_q = self.cfg.codec.n_quantizers
        lo, hi = self.cfg.low_rate_layers
        full = torch.randint(1, n_q + 1, (batch,), generator=self.generator)
        low = torch.randint(lo, min(hi, n_q) + 1, (batch,), generator=self.generator)
        pick_low = torch.rand(batch, generator=self.generator) < self.cfg.low_rate_fraction
        return torch.where(pick_low, low, full)

    def _batch(self) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """(input, target, denoise flag per example) with the configured augmentation.

        A noisy example with the flag on has the clean signal as its target; with the flag
        off, itself: the same model learns to keep or remove background noise.
        """
        g, cfg = self.generator, self.cfg
        clean = self.sampler.batch(cfg.batch_size)
        for probability, transform in (
            (cfg.eq_probability, lambda x: random_eq(x, g)),
            (cfg.band_limit_probability, lambda x: band_limit(x, g, cfg.codec.sample_rate)),
        ):
            if probability > 0:
                chosen = torch.rand(clean.shape[0], generator=g) < probability
                clean = torch.where(chosen[:, None], transform(clean), clean)
        denoise = torch.zeros(clean.shape[0])
        if self.mixer is None:
            return clean, clean, denoise
        noisy = torch.rand(clean.shape[0], generator=g) < cfg.denoise_fraction
        x = torch.where(noisy[:, None], self.mixer(clean), clean).clamp(-1.0, 1.0)
        denoise = (torch.rand(clean.shape[0], generator=g) < 0.5).float()
        target = torch.where(denoise[:, None] > 0, clean, x)
        return x, target, denoise

    def _seconds(self) -> float:
        """Training seconds so far, this process's and earlier ones'."""
        return self.elapsed + time.time() - self._started

    def _out_of_time(self) -> bool:
        return self.cfg.time_budget_s is not None and self._seconds() >= self.cfg.time_budget_s

    def _lr(self) -> float:
        progress = min(1.0, self.step / max(1, self.cfg.steps))
        if self.cfg.time_budget_s is not None:
            progress = max(progress, min(1.0, self._seconds() / self.cfg.time_budget_s))
        ramp = min(1.0, (self.step + 1) / self.cfg.lr_ramp_steps) if self.cfg.lr_ramp_steps else 1.0
        return ramp * (self.cfg.lr_final + 0.5 * (self.cfg.lr - self.cfg.lr_final) * (1 + math.cos(math.pi * progress)))

    def train_step(self) -> dict[str, float]:
        self.model.train()
        x, target, denoise = (t.to(self.device) for t in self._batch())
        n_layers = None if self.step < self.cfg.warmup_steps else self._layers(x.shape[0]).to(self.device)
        y, commit, stats = self.train_model(x, n_layers, denoise)
        terms = self.loss(y, target)
        total = terms["total"] + self.cfg.commit_weight * commit
        gan_start = self.cfg.gan_start_step
        if self.discriminators is not None and gan_start is not None and self.step >= gan_start:
            terms["disc"] = self._discriminator_step(target, y.detach())
            if self.step >= gan_start + self.cfg.disc_warmup_steps:
                assert self.train_discriminators is not None  # made with the discriminators
                terms["adv"], terms["feature"] = generator_losses(self.train_discriminators(target), self.train_discriminators(y))
                total = total + self.cfg.adv_weight * terms["adv"] + self.cfg.feature_weight * terms["feature"]
        for group in self.optimizer.param_groups:
            group["lr"] = self._lr()
        self.optimizer.zero_grad(set_to_none=True)
        total.backward()
        grad_norm = torch.nn.utils.clip_grad_norm_(self.model.parameters(), 1.0)
        self.optimizer.step()
        self.step += 1
        row = {k: float(v.detach()) for k, v in terms.items()}
        row["commit"] = float(commit.detach())
        row["grad_norm"] = float(grad_norm)
        perplexities = [v for k, v in stats.items() if k.startswith("perplexity_")]
        if perplexities:
            row["perplexity_l0"] = stats["perplexity_0"]
            row["perplexity_mean"] = sum(perplexities) / len(perplexities)
            row["restarts"] = sum(v for k, v in stats.items() if k.startswith("restarts_"))
        return row

    def _discriminator_step(self, real: torch.Tensor, fake: torch.Tensor) -> torch.Tensor:
        assert self.train_discriminators is not None and self.disc_optimizer is not None  # made with the discriminators
        loss = discriminator_loss(self.train_discriminators(real), self.train_discriminators(fake))
        self.disc_optimizer.zero_grad(set_to_none=True)
        loss.backward()
        self.disc_optimizer.step()
        return loss.detach()

    @torch.no_grad()
    def validate(self) -> dict[str, float]:
        self.model.eval()
        out: dict[str, float] = {}
        x = self.val_batch
        for kbps in (3.0, 6.0, 12.0):
            layers = self.cfg.codec.layers_for_kbps(kbps)
            y = self.model.decode(self.model.encode(x, layers))
            out[f"val_mel_{kbps:g}k"] = float(log_mel_distance(y, x, self.cfg.codec.sample_rate))
            out[f"val_pesq_{kbps:g}k"] = _mean_pesq(x.cpu(), y.cpu(), self.cfg.codec.sample_rate)
        out |= self._latent_stats(x)
        if self.mixer is not None:
            noisy = (x + 0.56 * self._val_noise).clamp(-1.0, 1.0)  # 5 dB SNR
            layers = self.cfg.codec.layers_for_kbps(6.0)
            on = self.model.decode(self.model.encode(noisy, layers, 1.0), denoise=1.0)
            off = self.model.decode(self.model.encode(noisy, layers, 0.0), denoise=0.0)
            out["val_denoise_sisdr_gain"] = float((si_sdr(on, x) - si_sdr(off, x)).mean())
        self.model.train()
        return out

    @torch.no_grad()
    def _latent_stats(self, x: torch.Tensor) -> dict[str, float]:
        """How much of the latent each layer count keeps, and how many directions it uses.

        The shipped run's encoder collapsed onto about one direction that layer 0 already
        codes, so every bitrate sounded the same. The error is relative to the latent minus
        its mean over frames: a constant offset (the trunk builds a large one) would make
        |z - q_k| / |z| look small whatever the layers carry. `val_latent_dims` is the
        participation ratio of the latent's covariance spectrum (1: one direction).
        """
        z = self.model.encoder(x)
        flat = z.reshape(-1, z.shape[-1])
        centred = flat - flat.mean(0)
        scale = centred.norm().clamp_min(1e-12)
        out = {"val_mel_latent": float(log_mel_distance(self.model.decoder(z), x, self.cfg.codec.sample_rate))}
        for k in _LATENT_LAYERS:
            if k <= self.cfg.codec.n_quantizers:
                q = self.model.quantizer.decode(self.model.quantizer.encode(z, k))
                out[f"val_latent_err_{k}"] = float((z - q).norm() / scale)
        spectrum = torch.linalg.svdvals(centred) ** 2
        out["val_latent_dims"] = float(spectrum.sum() ** 2 / (spectrum**2).sum().clamp_min(1e-24))
        return out

    # ---- loop ------------------------------------------------------------------------------------
    def run(self, steps: int | None = None) -> None:
        from tqdm import tqdm

        torch.set_num_threads(self.cfg.threads)
        if self.device.type == "cuda":
            torch.backends.cudnn.benchmark = True  # fixed crop shapes: pick the fastest kernels once
        end = self.cfg.steps if steps is None else min(self.cfg.steps, self.step + steps)
        bar = tqdm(total=end, initial=self.step, disable=not self.progress, dynamic_ncols=True, mininterval=1.0)
        if self.dist.is_main:
            _upgrade_log(self.log_path)
        log_exists = self.log_path.exists()
        board = _tensorboard(self.cfg.out_dir) if self.dist.is_main else None
        with self.log_path.open("a", newline="") if self.dist.is_main else open(os.devnull, "w") as log_file:
            writer: csv.DictWriter | None = None
            self._started = time.time()
            while self.step < end:
                row = self.train_step()
                bar.update(1)
                if self.dist.any(self._out_of_time()):  # every rank stops at the same step
                    end = self.step
                validate = (self.step % self.cfg.val_every == 0 or self.step == end) and self.dist.is_main
                if validate:
                    row.update(self.validate())
                if self.step % self.cfg.log_every == 0 or validate:
                    seconds = self._seconds()
                    row = {"step": self.step, "seconds": round(seconds, 1), "lr": self._lr()} | row
                    if writer is None:
                        writer = csv.DictWriter(log_file, fieldnames=_LOG_FIELDS, extrasaction="ignore")
                        if not log_exists:
                            writer.writeheader()
                    writer.writerow(row)
                    log_file.flush()
                    if board is not None:
                        for key, value in row.items():
                            if key != "step" and isinstance(value, float) and math.isfinite(value):
                                board.add_scalar(key, value, self.step)
                    bar.set_postfix({k: f"{row[k]:.3f}" for k in ("total", "mel", "complex", "perplexity_mean") if k in row})
                if self.step % self.cfg.ckpt_every == 0 or self.step == end:
                    self.save()
        bar.close()
        if board is not None:
            board.close()


_LATENT_LAYERS = (1, 2, 4, 12, 24)  # layer counts whose latent error validation logs


def _upgrade_log(path: Path) -> None:
    """Rewrite a log whose header is not today's under today's columns, by name.

    Rows appended by a newer trainer under an older header are read with today's names
    (recognised by their length)."""
    if not path.exists():
        return
    with path.open(newline="") as f:
        header, *lines = list(csv.reader(f)) or [[]]
    if header == _LOG_FIELDS:
        return
    rows = [dict(zip(_LOG_FIELDS if len(line) == len(_LOG_FIELDS) else header, line)) for line in lines]
    with path.open("w", newline="") as f:
        writer = csv.DictWriter(f, fieldnames=_LOG_FIELDS, extrasaction="ignore")
        writer.writeheader()
        writer.writerows(rows)


def _tensorboard(folder: Path):
    """A TensorBoard writer when tensorboard is installed (the CSV log is always written)."""
    try:
        from torch.utils.tensorboard import SummaryWriter
    except ImportError:
        return None
    return SummaryWriter(str(folder / "tensorboard"))


_LOG_FIELDS = [
    "step",
    "seconds",
    "lr",
    "total",
    "stft",
    "complex",
    "mel",
    "wave",
    "commit",
    "grad_norm",
    "disc",
    "adv",
    "feature",
    "perplexity_l0",
    "perplexity_mean",
    "restarts",
    "val_mel_3k",
    "val_mel_6k",
    "val_mel_12k",
    "val_pesq_3k",
    "val_pesq_6k",
    "val_pesq_12k",
    "val_denoise_sisdr_gain",
    "val_mel_latent",
    *(f"val_latent_err_{k}" for k in _LATENT_LAYERS),
    "val_latent_dims",
]


def _mean_pesq(reference: torch.Tensor, decoded: torch.Tensor, rate: int) -> float:
    """Mean PESQ-WB over the validation crops (NaN where the pesq package is missing)."""
    try:
        from pesq import pesq
    except ImportError:
        return float("nan")
    scores = []
    for ref, dec in zip(reference.numpy().astype("float64"), decoded.numpy().astype("float64")):
        try:
            scores.append(pesq(rate, ref, dec, "wb"))
        except Exception:  # pesq raises on crops it finds no speech in
            continue
    return float(np.mean(scores)) if scores else float("nan")
