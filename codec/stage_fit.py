"""Extra residual stages for a frozen codec, fit by k-means on what its stages leave over.

`python -m codec extend-stages` runs this: the frozen encoder turns random crops of the
training speech (`codec data build`) into latents, the model's own quantizer encodes them
through all its stages, and each new stage is a k-means codebook of the residual left by
every stage before it (the new stages' residual feeding the next). No gradient reaches the
encoder or decoder, so the existing stages' indices and everything they decode stay
bit-identical; the extended model only adds rows to the end of the codebooks.

The RVQ hygiene of the trainer's quantizer (`codec.quantization`) in batch form: codebooks
start from k-means (k-means++ seeding here, which needs no warm-up batches), and a code
left empty by a Lloyd step restarts on the vector the codebook currently fits worst. All
randomness comes from one seeded generator, so a fit is reproducible bit for bit on the same
machine and thread count.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from codec.errors import CodecError
from codec.sequential_rvq import SequentialResidualQuantizer
from codec.soundstream import SoundStreamCodec

CROP_FRAMES = 250  # 5 s crops: the causal encoder's state settles within a frame or two of a crop's start


@torch.no_grad()
def collect_latents(model: SoundStreamCodec, pcm: np.ndarray, frames: int, generator: torch.Generator) -> torch.Tensor:
    """Encoder latents [~frames, D] of random 5 s crops of an int16 stream (frames that are
    near-silent are dropped: they would spend codes on the noise floor)."""
    hop = model.cfg.hop
    crop = CROP_FRAMES * hop
    if pcm.size <= crop:
        raise ValueError(f"a stream of {pcm.size} samples is shorter than one crop of {crop}")
    out: list[torch.Tensor] = []
    have = 0
    while have < frames:
        start = int(torch.randint(0, pcm.size - crop, (1,), generator=generator))
        x = torch.from_numpy(pcm[start : start + crop].astype(np.float32) / 32768.0)
        loud = x.view(CROP_FRAMES, hop).pow(2).mean(-1).sqrt() > 1e-3
        latent = model.encoder(x[None], 0.0)[0]
        kept = latent[loud]
        out.append(kept)
        have += kept.shape[0]
    return torch.cat(out)[:frames].contiguous()


def _sq_distances(x: torch.Tensor, centroids: torch.Tensor) -> torch.Tensor:
    return (x * x).sum(-1, keepdim=True) - 2 * x @ centroids.t() + (centroids * centroids).sum(-1)[None]


def _assign(x: torch.Tensor, centroids: torch.Tensor, chunk: int = 65536) -> tuple[torch.Tensor, torch.Tensor]:
    idx, dist = [], []
    for i in range(0, x.shape[0], chunk):
        d = _sq_distances(x[i : i + chunk], centroids)
        best = d.min(-1)
        idx.append(best.indices)
        dist.append(best.values.clamp_min(0))
    return torch.cat(idx), torch.cat(dist)


def kmeans(x: torch.Tensor, k: int, iterations: int, generator: torch.Generator) -> torch.Tensor:
    """k centroids of x [N, D]: k-means++ seeding, then Lloyd steps with empty codes restarted
    on the worst-fit vectors."""
    n = x.shape[0]
    if n < k:
        raise ValueError(f"k-means of {k} codes needs at least {k} vectors, got {n}")
    centroids = torch.empty(k, x.shape[1], dtype=x.dtype)
    centroids[0] = x[int(torch.randint(0, n, (1,), generator=generator))]
    nearest = _sq_distances(x, centroids[:1])[:, 0].clamp_min(0)
    for j in range(1, k):
        pick = int(torch.multinomial(nearest + 1e-12, 1, generator=generator))
        centroids[j] = x[pick]
        nearest = torch.minimum(nearest, _sq_distances(x, centroids[j : j + 1])[:, 0].clamp_min(0))
    for _ in range(iterations):
        idx, dist = _assign(x, centroids)
        counts = torch.bincount(idx, minlength=k)
        sums = torch.zeros_like(centroids).index_add_(0, idx, x)
        filled = counts > 0
        centroids[filled] = sums[filled] / counts[filled, None].to(x.dtype)
        empty = (~filled).nonzero()[:, 0]
        if empty.numel():
            worst = dist.topk(empty.numel()).indices
            centroids[empty] = x[worst]
    return centroids


@dataclass(frozen=True)
class StageFit:
    """The new codebooks [stages, 2**bits, D] and the held-out residual energy after each
    stage (index 0: after the model's own stages), relative to the latent's energy."""

    codebooks: torch.Tensor
    heldout_relative_mse: list[float]


def residual_after(quantizer: SequentialResidualQuantizer, latents: torch.Tensor, chunk: int = 4096) -> torch.Tensor:
    """What the quantizer's stages leave of latents [N, D], in its own arithmetic."""
    out = []
    for i in range(0, latents.shape[0], chunk):
        z = latents[i : i + chunk][None]
        codes = quantizer.encode(z, quantizer.n_quantizers)
        out.append(z[0] - quantizer.decode(codes)[0])
    return torch.cat(out)


def _encode_stage(residual: torch.Tensor, book: torch.Tensor) -> torch.Tensor:
    return residual - book[_assign(residual, book)[0]]


def fit_stages(
    train_residual: torch.Tensor, heldout_residual: torch.Tensor, heldout_energy: float, bits: int, stages: int, iterations: int, generator: torch.Generator
) -> StageFit:
    """`stages` codebooks of 2**bits codes, each fit on the residual the ones before it leave."""
    books = []
    curve = [float(heldout_residual.pow(2).sum(-1).mean()) / heldout_energy]
    train, held = train_residual.clone(), heldout_residual.clone()
    for _ in range(stages):
        book = kmeans(train, 1 << bits, iterations, generator)
        books.append(book)
        train = _encode_stage(train, book)
        held = _encode_stage(held, book)
        curve.append(float(held.pow(2).sum(-1).mean()) / heldout_energy)
    return StageFit(torch.stack(books), curve)


def extend_model(model: SoundStreamCodec, books: torch.Tensor, name: str) -> SoundStreamCodec:
    """A copy of `model` whose quantizer has `books` [stages, K, D] appended after its own
    stages (same codebook size); every other tensor is the same."""
    quantizer = model.quantizer
    if books.shape[1:] != quantizer.codebooks.shape[1:]:
        raise ValueError(f"new codebooks of shape {tuple(books.shape[1:])} do not fit stages of {tuple(quantizer.codebooks.shape[1:])}")
    cfg = model.cfg.model_copy(update={"name": name, "n_quantizers": quantizer.n_quantizers + books.shape[0]})
    extended = SoundStreamCodec(type(model.cfg).model_validate(cfg.model_dump()))
    state = model.state_dict()
    state["quantizer.codebooks"] = torch.cat([quantizer.codebooks, books.float()])
    extended.load_state_dict(state)
    return extended.eval()


@dataclass(frozen=True)
class ExtendedModel:
    model: SoundStreamCodec
    fit: StageFit
    train_frames: int
    heldout_frames: int


def extend_from_data(
    model: SoundStreamCodec,
    speech: np.ndarray,
    heldout: np.ndarray,
    bits: int,
    stages: int,
    name: str,
    frames: int = 200_000,
    iterations: int = 20,
    seed: int = 0,
) -> ExtendedModel:
    """Fit `stages` new stages of `bits` bits on latents of `speech` (int16 at the model's rate),
    scoring each on latents of `heldout`, and return the model with them appended."""
    if bits != model.cfg.bits_per_code:
        # The wire, the container and the handshake code every stage of a model at one width.
        raise ValueError(f"new stages must have the model's {model.cfg.bits_per_code}-bit codes, not {bits}")
    if not 1 <= model.cfg.n_quantizers + stages <= 255 or stages < 1:
        raise ValueError(f"{stages} new stages: a model has at most 255 (the container's layer counts are bytes)")
    generator = torch.Generator().manual_seed(seed)
    train = collect_latents(model, speech, frames, generator)
    held = collect_latents(model, heldout, max(2_000, frames // 10), generator)
    energy = float(held.pow(2).sum(-1).mean())
    fit = fit_stages(residual_after(model.quantizer, train), residual_after(model.quantizer, held), energy, bits, stages, iterations, generator)
    return ExtendedModel(extend_model(model, fit.codebooks, name), fit, train.shape[0], held.shape[0])


def write_extended_model(data: Path, out: Path, base: str, name: str, bits: int, stages: int, frames: int, iterations: int, seed: int) -> dict:
    """`python -m codec extend-stages`: fit, save `out/<name>.pt|.json` with its provenance,
    and return the summary (model id, held-out residual energy after each stage)."""
    from codec.weights import describe_model, load_model, save_model

    torch.set_num_threads(1)  # the fit's figures are reproducible per thread count; one is enough
    model, base_id = load_model(None, base)
    if not isinstance(model, SoundStreamCodec):
        raise CodecError(f"{base}: only soundstream-family models take extra stages")
    speech = np.load(data / "speech.npy", mmap_mode="r")
    heldout = np.load(data / "speech_val.npy", mmap_mode="r")
    try:
        result = extend_from_data(model, speech, heldout, bits, stages, name, frames, iterations, seed)
    except ValueError as exc:
        raise CodecError(str(exc)) from None
    manifest = data / "manifest.json"
    provenance = {
        **{k: v for k, v in describe_model(base).items() if k == "source"},  # whose weights the rest are
        "base_model": base_id,
        "extra_stages": {
            "stages": stages,
            "first_stage": model.cfg.n_quantizers,
            "bits": bits,
            "command": f"python -m codec extend-stages --data DATA --base {base} --name {name} --bits {bits} --stages {stages} "
            f"--frames {frames} --iterations {iterations} --seed {seed}",
            "data_manifest_sha256": hashlib.sha256(manifest.read_bytes()).hexdigest() if manifest.is_file() else None,
            "train_frames": result.train_frames,
            "heldout_frames": result.heldout_frames,
            "heldout_relative_residual_energy": [round(v, 5) for v in result.fit.heldout_relative_mse],
        },
    }
    # float32, as the base ships: Lyra's dequantized int8 weights are not all float16 numbers,
    # and the base's stages must decode bit-identically.
    model_id = save_model(result.model, out, name, dtype=torch.float32, extra=provenance)
    return {"model_id": model_id} | provenance
