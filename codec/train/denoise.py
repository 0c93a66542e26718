"""Train the soundstream family's denoise switch: `python -m codec.train.denoise --data data --out runs/denoise`.

The base model (`--base`, the default codec) stays frozen, quantizer and decoder and encoder
alike; only the encoder's flag-gated residuals (`codec.modules.film.FlagGatedResidual`, FiLM
and optional pointwise adapters, `--adapter` hidden channels, and optionally a causal temporal
context feeding the adapters of the one-step-a-frame points, `--context` channels,
`codec.modules.temporal_context`) learn. A training example is a
`--seconds` crop of the data builder's speech (`data/speech.npy`) scaled to a random level
(`--level-low` to `--level-high` dBFS); `NoiseMixer` adds coloured noise, babble (other speakers
of the stream) or music (`data/music.npy`) at an SNR of `--snr-low` to `--snr-high` dB, and the
target is the switched-off (base) encoder's latent of the crop itself. With probability
`--clean-fraction` the example is "clean" instead: noise as faint as a real recording's floor
(`--faint-snr-low` to `--faint-snr-high` dB), and its target is the base's latent of that very
input, weighted `--clean-weight` in the loss: the switch must leave clean speech alone. Loss:
MSE of the switched-on encoder's latent against the target, relative to the target's energy,
plus, with `--decoded-weight` > 0, that weight times a multi-resolution log-magnitude + log-mel
loss of the switched-on latent decoded through the frozen quantizer (`--decoded-stages` stages,
straight-through; 0: unquantized) and decoder against the base's decoding of the target
(`codec.train.denoise_loss`). `--init-from` starts the switch from a shipped model's (its name)
or a run's (its folder) instead of the identity; a switch without a context can start one with
`--context` (the context starts fresh, its output zero, so the first step is that switch).

Validation (every `--eval-every` steps): a fixed set of `data/speech_val.npy` crops with fixed
noise, the same relative error for noisy input with the switch on (`val_noisy_on`; the base
encoder's error on it is logged once as `val_noisy_off`) and for clean input with the switch on
(`val_clean_on`), and the log-mel distance (`codec.train.losses.log_mel_distance`) of the decoded
audio against the base's decoding of the clean crops, noisy and clean input with the switch on
(`val_mel_noisy_on`, `val_mel_clean_on`; `val_mel_noisy_off` once). Resumes exactly from
`OUT/checkpoint.pt` (trained tensors, optimiser, schedule, step, random states); logs `OUT/log.csv`.

`python -m codec.train.denoise check CLIPS (--run OUT | --model NAME) --kbps 6 --noise-snr 5` scores
the switch on held-out clips (validation, never training): PESQ-WB and STOI of clean clips with
the switch off and on (what the switch costs clean speech; also log-mel distance and SI-SDR) and of the clips with coloured noise
(a seeded `augment.coloured_noise` per clip) off and on, and the ONNX encoder step's time a
frame with the switch off and on.

`python -m codec.train.denoise export --run OUT --name NAME` writes the trained model into
`codec/weights` as an overlay on its base (`codec.weights.save_overlay`: only the new tensors,
with the base's name and checksum), its provenance in the description file.
"""

from __future__ import annotations

import argparse
import csv
import hashlib
import sys
import time
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np
import torch

from codec.soundstream import SoundStreamCodec
from codec.train.augment import NoiseMixer
from codec.train.checkpoint import save_atomically
from codec.train.data import missing_speech
from codec.train.denoise_loss import DecodedSpectralLoss, decode_latent, relative_error
from codec.train.losses import log_mel_distance

BASE_MODEL = "soundstream16k-lyra2x"


@dataclass(frozen=True)
class TrainConfig:
    steps: int = 1000
    batch: int = 16
    seconds: float = 2.0
    lr: float = 3e-3
    adapter: int = 32  # hidden channels of each gated adapter; 0: FiLM alone
    # Channels of the causal temporal context at the one-step-a-frame points (0: none;
    # `codec.modules.temporal_context`). With --init-from a switch without one, the context
    # starts fresh (its output zero), so step 0 is that switch.
    context: int = 0
    clean_fraction: float = 0.25
    clean_weight: float = 1.0  # of a clean example's error in the loss (a noisy one's is 1)
    snr_low: float = 0.0
    snr_high: float = 20.0
    # The examples kept "clean" carry noise this faint (dB SNR), and their target is themselves:
    # real clean recordings have a noise floor, and the switch should leave it alone.
    faint_snr_low: float = 30.0
    faint_snr_high: float = 50.0
    level_low: float = -35.0  # each crop is scaled to a speech level (dBFS) in this range
    level_high: float = -12.0
    # Weight of the spectral loss of the decoded audio (0: latent loss alone), and the quantizer
    # stages it decodes through (straight-through; 30 of 4 bits at 50 frames/s is 6 kbit/s). 0,
    # unquantized, by default: through 30 stages the RVQ's code flips alone hold the loss of a
    # switch that barely changes clean speech at ~0.9 against ~0.2 unquantized (docs/training.md),
    # noise that would swamp the gradient.
    decoded_weight: float = 0.0
    decoded_stages: int = 0
    # A clean example's weight in the decoded loss: the latent loss's --clean-weight 10 made clean
    # examples 10/11 of it, and the switch then traded noisy output for clean fidelity.
    decoded_clean_weight: float = 1.0
    init_from: str = ""  # a shipped model's name or a run's folder: start from its switch
    val_examples: int = 32
    eval_every: int = 100
    seed: int = 0


def conditioned_copy(base: SoundStreamCodec, adapter: int, name: str | None = None, context: int = 0) -> SoundStreamCodec:
    """The base model with a fresh (identity) denoise switch in its encoder, every base tensor frozen."""
    update = {"denoise_conditioning": True, "denoise_adapter_channels": adapter, "denoise_context_channels": context, "name": name or base.cfg.name + "d"}
    cfg = base.cfg.model_copy(update=update)
    cfg = type(base.cfg).model_validate(cfg.model_dump())  # validated, not just copied
    model = SoundStreamCodec(cfg)
    missing, unexpected = model.load_state_dict(base.state_dict(), strict=False)
    assert not unexpected and all(k.startswith("encoder.conditioning.") for k in missing), (missing, unexpected)
    for p in model.parameters():
        p.requires_grad_(False)
    for p in switch_parameters(model):
        p.requires_grad_(True)
    return model.eval()


def switch_parameters(model: SoundStreamCodec) -> list[torch.nn.Parameter]:
    assert model.encoder.conditioning is not None, "a model with the denoise switch"
    return list(model.encoder.conditioning.parameters())


def switch_state(model: SoundStreamCodec) -> dict[str, torch.Tensor]:
    return {k: v.detach().clone() for k, v in model.state_dict().items() if k.startswith("encoder.conditioning.")}


class Batches:
    """(input, target audio) pairs: crops of an int16 stream at a random level; most mixed with
    noise (target: the crop), some with faint noise only (target: the input itself); all
    randomness from one generator."""

    def __init__(self, speech: np.ndarray, music: np.ndarray | None, cfg: TrainConfig, generator: torch.Generator, hop: int) -> None:
        self.speech, self.cfg, self.generator = speech, cfg, generator
        self.length = int(cfg.seconds * 16_000) // hop * hop
        if speech.size <= self.length:
            raise ValueError(f"a speech stream of {speech.size} samples is shorter than one {cfg.seconds} s crop")
        self.mixer = NoiseMixer(speech, music, generator, (cfg.snr_low, cfg.snr_high))
        self.faint = NoiseMixer(speech, music, generator, (cfg.faint_snr_low, cfg.faint_snr_high))

    def __call__(self, batch: int) -> tuple[torch.Tensor, torch.Tensor]:
        """(input [B, S], target audio [B, S])."""
        cfg = self.cfg
        starts = torch.randint(0, self.speech.size - self.length, (batch,), generator=self.generator).tolist()
        clean = torch.from_numpy(np.stack([self.speech[s : s + self.length] for s in starts]).astype(np.float32) / 32768.0)
        level_db = torch.rand(batch, 1, generator=self.generator) * (cfg.level_high - cfg.level_low) + cfg.level_low
        clean = clean * (10 ** (level_db / 20) / clean.pow(2).mean(-1, keepdim=True).sqrt().clamp(min=1e-3))
        keep = torch.rand(batch, 1, generator=self.generator) < cfg.clean_fraction
        noisy, faint = self.mixer(clean), self.faint(clean)
        return torch.where(keep, faint, noisy), torch.where(keep, faint, clean)


def initial_switch(source: str) -> tuple[dict[str, torch.Tensor], str]:
    """The switch tensors of a run's folder (its checkpoint.pt) or of a shipped model (its name),
    and what they are (the model's id, or the checkpoint's sha256: a name alone may be replaced)."""
    checkpoint = Path(source, "checkpoint.pt")
    if checkpoint.is_file():
        identity = f"{source} (checkpoint.pt sha256 {hashlib.sha256(checkpoint.read_bytes()).hexdigest()})"
        return dict(torch.load(checkpoint, map_location="cpu", weights_only=False)["switch"]), identity
    from codec.weights import load_model

    loaded, model_id = load_model(None, source)
    if not isinstance(loaded, SoundStreamCodec) or not loaded.cfg.denoise_conditioning:
        raise ValueError(f"{source} is neither a run folder nor a shipped model with the denoise switch")
    return switch_state(loaded), model_id


def fits(initial: dict[str, torch.Tensor], switch: dict[str, torch.Tensor]) -> bool:
    """Whether `initial` can start `switch`: the same tensors and shapes, except that a switch
    without a temporal context may start one with it (the context stays fresh)."""
    fresh = {k for k in switch.keys() - initial.keys() if ".context." in k}
    return initial.keys() == switch.keys() - fresh and all(v.shape == switch[k].shape for k, v in initial.items())


def _manifest_sha(data: Path) -> str | None:
    manifest = data / "manifest.json"
    return hashlib.sha256(manifest.read_bytes()).hexdigest() if manifest.is_file() else None


def train(data: Path, out: Path, cfg: TrainConfig, base: SoundStreamCodec | None = None, until: int | None = None, log_every: int = 10) -> SoundStreamCodec:
    """Train (or resume) the switch on `base` (the shipped BASE_MODEL if None); stop at `until`
    steps if given (a later call resumes), else at cfg.steps."""
    torch.set_num_threads(1)
    base_name = BASE_MODEL
    if base is None:
        from codec.weights import load_model

        loaded, _ = load_model(None, BASE_MODEL)
        assert isinstance(loaded, SoundStreamCodec)
        base = loaded
    else:
        base_name = base.cfg.name
    torch.manual_seed(cfg.seed)
    model = conditioned_copy(base, cfg.adapter, context=cfg.context)
    init_identity = None
    if cfg.init_from:
        initial, init_identity = initial_switch(cfg.init_from)
        if not fits(initial, switch_state(model)):
            raise ValueError(f"{cfg.init_from}'s switch does not fit this base with --adapter {cfg.adapter} --context {cfg.context}")
        model.load_state_dict(initial, strict=False)
    params = switch_parameters(model)
    optimiser = torch.optim.AdamW(params, lr=cfg.lr, weight_decay=0.0)
    schedule = torch.optim.lr_scheduler.CosineAnnealingLR(optimiser, cfg.steps, eta_min=cfg.lr / 20)
    generator = torch.Generator().manual_seed(cfg.seed)
    speech = np.load(data / "speech.npy", mmap_mode="r")
    music_path = data / "music.npy"
    music = np.load(music_path, mmap_mode="r") if music_path.is_file() else None
    batches = Batches(speech, music, cfg, generator, model.cfg.hop)
    step = 0
    out.mkdir(parents=True, exist_ok=True)
    checkpoint = out / "checkpoint.pt"
    if checkpoint.exists():
        state = torch.load(checkpoint, map_location="cpu", weights_only=False)
        # Settings added since a checkpoint was written read as their defaults.
        if asdict(TrainConfig()) | state["train_config"] != asdict(cfg) | {"steps": state["train_config"]["steps"]}:
            raise ValueError(f"{checkpoint} was trained with other settings: {state['train_config']}")
        model.load_state_dict(state["switch"], strict=False)
        optimiser.load_state_dict(state["optimiser"])
        schedule.load_state_dict(state["schedule"])
        generator.set_state(state["generator"])
        torch.set_rng_state(state["torch_rng"])
        step = state["step"]
    # A fixed validation set: the same crops and noise at every evaluation.
    val_speech = np.load(data / "speech_val.npy", mmap_mode="r")
    val_cfg = TrainConfig(**{**asdict(cfg), "clean_fraction": 0.0})
    val_inputs, val_clean = Batches(val_speech, music, val_cfg, torch.Generator().manual_seed(1234), model.cfg.hop)(cfg.val_examples)
    val_stages = cfg.decoded_stages
    rate = model.cfg.sample_rate
    with torch.no_grad():
        val_target = model.encoder(val_clean, 0.0)
        val_noisy_latent = model.encoder(val_inputs, 0.0)
        val_noisy_off = relative_error(val_noisy_latent, val_target).item()
        val_audio = decode_latent(model, val_target, val_stages)
        val_mel_off = log_mel_distance(decode_latent(model, val_noisy_latent, val_stages), val_audio, rate).item()

    def validate() -> list[float]:
        with torch.no_grad():
            noisy, clean = model.encoder(val_inputs, 1.0), model.encoder(val_clean, 1.0)
            mels = [log_mel_distance(decode_latent(model, latent, val_stages), val_audio, rate).item() for latent in (noisy, clean)]
            return [relative_error(noisy, val_target).item(), relative_error(clean, val_target).item(), *mels]

    decoded_loss = DecodedSpectralLoss(rate, cfg.decoded_clean_weight) if cfg.decoded_weight > 0 else None

    log_path = out / "log.csv"
    fresh = not log_path.exists()
    started = time.monotonic()
    stop = min(cfg.steps, until) if until is not None else cfg.steps
    with log_path.open("a", newline="") as f:
        writer = csv.writer(f)
        if fresh:
            writer.writerow(["step", "loss", "clean_loss", "decoded_loss", "val_noisy_off", "val_noisy_on", "val_clean_on"]
                            + ["val_mel_noisy_off", "val_mel_noisy_on", "val_mel_clean_on", "lr", "seconds"])  # fmt: skip
        running, running_clean, running_decoded, count = 0.0, 0.0, 0.0, 0
        while step < stop:
            inputs, clean = batches(cfg.batch)
            with torch.no_grad():
                target = model.encoder(clean, 0.0)
            latent = model.encoder(inputs, 1.0)
            untouched = (inputs == clean).all(-1)
            loss = relative_error(latent, target, 1.0 + (cfg.clean_weight - 1.0) * untouched.float())
            decoded = torch.zeros(())
            if decoded_loss is not None:
                with torch.no_grad():
                    target_audio = decode_latent(model, target, cfg.decoded_stages)
                decoded = decoded_loss(decode_latent(model, latent, cfg.decoded_stages), target_audio, untouched)
                loss = loss + cfg.decoded_weight * decoded
            optimiser.zero_grad()
            loss.backward()
            torch.nn.utils.clip_grad_norm_(params, 1.0)
            optimiser.step()
            schedule.step()
            step += 1
            with torch.no_grad():
                clean_loss = relative_error(latent[untouched], target[untouched]).item() if untouched.any() else float("nan")
            running, running_clean, count = running + loss.item(), running_clean + clean_loss, count + 1
            running_decoded += decoded.item()
            evaluate = step % cfg.eval_every == 0 or step == stop
            if step % log_every == 0 or evaluate:
                val = [f"{v:.4f}" for v in validate()] if evaluate else ["", "", "", ""]
                lr, seconds = f"{schedule.get_last_lr()[0]:.2e}", f"{time.monotonic() - started:.0f}"
                losses = [f"{running / count:.4f}", f"{running_clean / count:.4f}", f"{running_decoded / count:.4f}"]
                writer.writerow([step, *losses, f"{val_noisy_off:.4f}", *val[:2], f"{val_mel_off:.4f}", *val[2:], lr, seconds])
                f.flush()
                running, running_clean, running_decoded, count = 0.0, 0.0, 0.0, 0
            if evaluate:
                state = {
                    "switch": switch_state(model),
                    "config": model.cfg.model_dump(),
                    "base_model": base_name,
                    "optimiser": optimiser.state_dict(),
                    "schedule": schedule.state_dict(),
                    "generator": generator.get_state(),
                    "torch_rng": torch.get_rng_state(),
                    "step": step,
                    "train_config": asdict(cfg),
                    "data_manifest_sha256": _manifest_sha(data),
                    "init_from": init_identity,
                }
                save_atomically(state, checkpoint)
    return model.eval()


def model_from_run(run: Path, base_folder: Path | None = None) -> SoundStreamCodec:
    """The switch of a run's checkpoint on its base (for scoring before export)."""
    from codec.weights import load_model

    state = torch.load(run / "checkpoint.pt", map_location="cpu", weights_only=False)
    base, _ = load_model(base_folder, state["base_model"])
    assert isinstance(base, SoundStreamCodec)
    model = conditioned_copy(base, state["train_config"]["adapter"], context=state["train_config"].get("context", 0))
    model.load_state_dict(state["switch"], strict=False)
    return model.eval()


def score_switch(model: SoundStreamCodec, clips: list[Path], kbps: float, noise_snr: float) -> dict[str, dict[str, float]]:
    """Mean PESQ-WB, STOI, log-mel distance and SI-SDR of `clips` through `model` at `kbps`
    (`codec.train.evaluate.metrics`): clean and noisy, switch off and on."""
    from codec.audio_io import load_audio
    from codec.train.augment import coloured_noise
    from codec.train.evaluate import codec_roundtrip, mean_scores, metrics

    rows: dict[str, list[dict[str, float]]] = {}
    for i, path in enumerate(clips):
        clean, _ = load_audio(path, model.cfg.sample_rate)
        noise = coloured_noise(1, clean.size, torch.Generator().manual_seed(i))[0].numpy()
        noisy = (clean + noise * np.sqrt(np.mean(clean**2) / (np.mean(noise**2) + 1e-12)) * 10 ** (-noise_snr / 20)).astype(np.float32)
        rows.setdefault("noisy input", []).append(metrics(clean, noisy))
        for kind, audio in (("clean", clean), ("noisy", noisy)):
            for switch in (0.0, 1.0):
                decoded = codec_roundtrip(model, "", audio, kbps, "torch", switch)
                rows.setdefault(f"{kind}, switch {'on' if switch else 'off'}", []).append(metrics(clean, decoded))
    return {name: {m: round(v, 4) for m, v in mean_scores(values).items()} for name, values in rows.items()}


def time_switch(model: SoundStreamCodec, model_id: str, frames: int = 300, warmup: int = 20) -> dict[str, dict[str, float]]:
    """Encoder ms a frame on one thread (ONNX engine, p50 and mean), switch off and on, interleaved
    in blocks so both see the same machine load."""
    import time as clock

    from codec.onnx_runtime import OnnxStreamingEncoder

    hop = model.cfg.hop
    signal = (np.random.default_rng(0).standard_normal((frames + warmup, 1, hop)) * 0.1).astype(np.float32)
    encoder = OnnxStreamingEncoder(model, model_id)
    times: dict[float, list[float]] = {0.0: [], 1.0: []}
    for t in range(frames + warmup):
        switch = float((t // 10) % 2)
        start = clock.perf_counter()
        encoder.encode(signal[t], model.cfg.n_quantizers, switch)
        if t >= warmup:
            times[switch].append(1000 * (clock.perf_counter() - start))
    return {f"switch {'on' if k else 'off'}": {"p50": round(float(np.median(v)), 3), "mean": round(float(np.mean(v)), 3)} for k, v in times.items()}


def _identity(init_from: str) -> str | None:
    """What a run's --init-from names now (for checkpoints written before they recorded it)."""
    return initial_switch(init_from)[1] if init_from else None


def export(run: Path, out: Path | None, name: str, base_folder: Path | None = None) -> dict:
    """The run's switch on its base, written as an overlay `<name>.pt|.json` in `out` (the
    shipped weights by default; the base must be there too), with its provenance."""
    from codec.weights import WEIGHTS_DIR, describe_model, load_model, save_overlay

    state = torch.load(run / "checkpoint.pt", map_location="cpu", weights_only=False)
    folder = out or WEIGHTS_DIR
    base, base_id = load_model(base_folder or folder, state["base_model"])
    assert isinstance(base, SoundStreamCodec)
    cfg = state["train_config"]
    model = conditioned_copy(base, cfg["adapter"], name, cfg.get("context", 0))
    model.load_state_dict(state["switch"], strict=False)
    flags = " ".join(f"--{k.replace('_', '-')} {v}" for k, v in cfg.items() if v != "")
    evaluated = [row for row in csv.DictReader((run / "log.csv").open()) if row["val_noisy_on"]] if (run / "log.csv").is_file() else []
    logged = ("step", "val_noisy_off", "val_noisy_on", "val_clean_on", "val_mel_noisy_off", "val_mel_noisy_on", "val_mel_clean_on")
    last = {k: float(evaluated[-1][k]) for k in logged if evaluated[-1].get(k)} if evaluated else {}
    provenance = {
        **{k: v for k, v in describe_model(state["base_model"], base_folder or folder).items() if k == "source"},
        "base_model": base_id,
        "denoise_switch": {
            "command": f"python -m codec.train.denoise --data DATA --out RUN {flags}; python -m codec.train.denoise export --run RUN --name {name}",
            "steps": state["step"],
            "trained": "the encoder's flag-gated residuals only; encoder, quantizer and decoder frozen",
            "data_manifest_sha256": state["data_manifest_sha256"],
            "initialised_from": state.get("init_from") or _identity(cfg.get("init_from", "")),
            "last_validation": last,  # relative latent errors and decoded log-mel distances on the run's fixed speech_val set (log.csv)
        },
    }
    model_id = save_overlay(model, folder, name, state["base_model"], extra=provenance)
    licence = (base_folder or folder) / f"{state['base_model']}.LICENSE"
    if licence.is_file():  # the base's weights travel under their licence
        (folder / f"{name}.LICENSE").write_text(licence.read_text())
    return {"model_id": model_id} | provenance


def _train_main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(prog="python -m codec.train.denoise", description=__doc__.split("\n")[0])
    parser.add_argument("--data", type=Path, default=Path("data"), help="the data builder's folder (speech.npy, speech_val.npy, music.npy)")
    parser.add_argument("--out", type=Path, default=Path("runs/denoise"))
    parser.add_argument("--until", type=int, help="stop at this step (a later run resumes)")
    defaults = TrainConfig()
    for name in ("steps", "batch", "adapter", "context", "val_examples", "eval_every", "seed"):
        parser.add_argument(f"--{name.replace('_', '-')}", type=int, default=getattr(defaults, name))
    parser.add_argument("--decoded-stages", type=int, default=defaults.decoded_stages)
    parser.add_argument("--decoded-weight", type=float, default=defaults.decoded_weight)
    parser.add_argument("--decoded-clean-weight", type=float, default=defaults.decoded_clean_weight)
    parser.add_argument("--init-from", default="", help="start from this shipped model's switch (its name) or this run's (its folder)")
    for name in ("seconds", "lr", "clean_fraction", "clean_weight", "snr_low", "snr_high", "faint_snr_low", "faint_snr_high", "level_low", "level_high"):
        parser.add_argument(f"--{name.replace('_', '-')}", type=float, default=getattr(defaults, name))
    args = parser.parse_args(argv)
    missing = missing_speech(args.data)
    if missing:
        print(missing, file=sys.stderr)
        return 2
    fields = {k: getattr(args, k) for k in TrainConfig.__dataclass_fields__}
    from codec.errors import CodecError

    try:
        train(args.data, args.out, TrainConfig(**fields), until=args.until)
    except (ValueError, CodecError) as exc:  # CodecError: an --init-from that is no model
        print(f"error: {exc}", file=sys.stderr)
        return 2
    print(f"trained {args.out / 'checkpoint.pt'}")
    return 0


def _export_main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(prog="python -m codec.train.denoise export", description="write a trained switch as a shipped model")
    parser.add_argument("--run", type=Path, required=True, help="the training run's folder (its checkpoint.pt)")
    parser.add_argument("--name", required=True, help="the new model's name")
    parser.add_argument("--out", type=Path, help="where to write it (default: the shipped weights; its base must be there)")
    args = parser.parse_args(argv)
    if not (args.run / "checkpoint.pt").is_file():
        print(f"error: {args.run / 'checkpoint.pt'} not found", file=sys.stderr)
        return 2
    from codec.errors import WeightsError

    try:
        summary = export(args.run, args.out, args.name)
    except (WeightsError, ValueError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    print(f"wrote {args.name}: {summary['model_id']}")
    return 0


def _check_main(argv: list[str]) -> int:
    import json

    from codec.errors import CodecError
    from codec.train.evaluate import clip_paths
    from codec.weights import load_model

    parser = argparse.ArgumentParser(prog="python -m codec.train.denoise check", description="score the switch on clean and noisy clips")
    parser.add_argument("clips", type=Path, help="a folder of held-out speech clips (never training data)")
    source = parser.add_mutually_exclusive_group(required=True)
    source.add_argument("--run", type=Path, help="a training run's folder")
    source.add_argument("--model", help="a shipped model with the switch")
    parser.add_argument("--kbps", type=float, default=6.0)
    parser.add_argument("--noise-snr", type=float, default=5.0)
    parser.add_argument("--time-frames", type=int, default=300, help="frames to time the ONNX encoder step over, switch off and on (0: no timing)")
    args = parser.parse_args(argv)
    torch.set_num_threads(1)
    try:
        if args.run is not None:
            model = model_from_run(args.run)
            model_id = "denoise-run-" + hashlib.sha256((args.run / "checkpoint.pt").read_bytes()).hexdigest()[:10]
        else:
            loaded, model_id = load_model(None, args.model)
            if not isinstance(loaded, SoundStreamCodec) or not loaded.cfg.denoise_conditioning:
                raise CodecError(f"{args.model} has no soundstream denoise switch")
            model = loaded
        result: dict[str, object] = {
            "scores": score_switch(model, clip_paths(args.clips), args.kbps, args.noise_snr),
            "kbps": args.kbps,
            "noise_snr": args.noise_snr,
        }
        if args.time_frames:
            result["encoder_ms_per_frame_onnx"] = time_switch(model, model_id, args.time_frames)
    except (CodecError, OSError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    print(json.dumps(result, indent=1))
    return 0


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    commands = {"export": _export_main, "check": _check_main}
    return commands[argv[0]](argv[1:]) if argv[:1] and argv[0] in commands else _train_main(argv)


if __name__ == "__main__":
    sys.exit(main())
