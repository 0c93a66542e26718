"""A causal predictor of the next frame's latent, for concealing lost frames in latent space.

A lost frame is played as the decoder's output for a predicted latent (the 64-d vector the
soundstream decoder takes), so the decoder's own state stays continuous and the voice goes on
rather than repeating. The predictor is a one-layer GRU over the latents of the frames played
before (each with a flag: was it received, or a prediction fed back in a burst), in a
normalised space, predicting the change from the last input; trained by
`python -m codec.train.concealment` (docs/concealment.md).

`forward` runs a whole sequence (training), `step` one frame with explicit state, and
`StreamingPredictor` that step in NumPy (the receiver); all give the same predictions
(tests/codec/test_concealment.py).

An optional `GuessRefiner` (`PredictorConfig.refiner` > 0) turns the prediction into the latent
actually decoded: from the GRU's state, the prediction and, when the playout buffer already
holds a later frame (within `reach` frames), that frame's latent and its distance. It is
trained with the GRU frozen, through the frozen decoder, on a spectral loss of the decoded audio
(`python -m codec.train.concealment_refiner`): an MSE-trained prediction regresses towards the
mean latent and decodes muffled, which PESQ punishes more than the error itself suggests.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np
import torch
from torch import nn

WEIGHTS_DIR = Path(__file__).resolve().parent / "weights"
DEFAULT_PREDICTOR = WEIGHTS_DIR / "latent-predictor-soundstream16k-lyra2.pt"


@dataclass(frozen=True)
class PredictorConfig:
    latent_dim: int = 64
    hidden: int = 256
    layers: int = 1
    refiner: int = 0  # hidden width of the GuessRefiner; 0: none, the prediction is decoded as it is
    reach: int = 4  # the farthest later frame (in frames) the refiner is given


def straight_path(guess, later, distance):
    """The point on the straight line from the prediction to a later frame's latent, one step
    of `distance` + 1 (halfway for the next frame; the prediction where `distance` is 0).
    Works on torch tensors [B, D] with `distance` [B] and on NumPy vectors with an int."""
    if isinstance(distance, torch.Tensor):
        return guess + (later - guess) * (distance > 0).to(guess.dtype)[:, None] / (distance[:, None].to(guess.dtype) + 1)
    return guess + (later - guess) / (distance + 1) if distance else guess


class GuessRefiner(nn.Module):
    """(GRU state [B, H], prediction [B, D], later frame [B, D] or zeros, its distance [B] in
    0..reach, 0: none) -> the latent to decode [B, D]; all latents normalised. Starts as the
    straight path (`straight_path`; zero output layer) and learns a correction to it."""

    def __init__(self, cfg: PredictorConfig) -> None:
        super().__init__()
        self.reach = cfg.reach
        self.inner = nn.Linear(cfg.hidden + 2 * cfg.latent_dim + cfg.reach + 1, cfg.refiner)
        # tanh-approximated GELU: the NumPy step computes exactly this form.
        self.activation = nn.GELU(approximate="tanh")
        self.out = nn.Linear(cfg.refiner, cfg.latent_dim)
        nn.init.zeros_(self.out.weight)
        nn.init.zeros_(self.out.bias)

    def forward(self, state: torch.Tensor, guess: torch.Tensor, later: torch.Tensor, distance: torch.Tensor) -> torch.Tensor:
        where = nn.functional.one_hot(distance.long(), self.reach + 1).to(guess.dtype)
        later = later * (distance > 0).to(guess.dtype)[:, None]
        return straight_path(guess, later, distance) + self.out(self.activation(self.inner(torch.cat([state, guess, later, where], dim=-1))))


class LatentPredictor(nn.Module):
    mean: torch.Tensor
    scale: torch.Tensor

    def __init__(self, cfg: PredictorConfig) -> None:
        super().__init__()
        self.cfg = cfg
        # Per-dimension statistics of the training latents: the GRU sees unit-scale inputs.
        self.register_buffer("mean", torch.zeros(cfg.latent_dim))
        self.register_buffer("scale", torch.ones(cfg.latent_dim))
        self.gru = nn.GRU(cfg.latent_dim + 1, cfg.hidden, cfg.layers, batch_first=True)
        self.head = nn.Linear(cfg.hidden, cfg.latent_dim)
        nn.init.zeros_(self.head.weight)  # starts as "repeat the last latent"
        nn.init.zeros_(self.head.bias)
        self.refiner = GuessRefiner(cfg) if cfg.refiner else None

    def initial_state(self, batch: int = 1) -> torch.Tensor:
        return torch.zeros(self.cfg.layers, batch, self.cfg.hidden)

    def _predict(self, inputs: torch.Tensor, normalised: torch.Tensor, state: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        out, state = self.gru(inputs, state)
        return normalised + self.head(out), state

    def step(self, latent: torch.Tensor, predicted: torch.Tensor, state: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """One frame: latent [B, D] played (received, or the last prediction when `predicted` [B]
        is 1) -> (the next frame's predicted latent [B, D], new state)."""
        normalised = (latent - self.mean) / self.scale
        inputs = torch.cat([normalised, predicted[:, None].to(latent.dtype)], dim=-1)[:, None]
        nxt, state = self._predict(inputs, normalised[:, None], state)
        return nxt[:, 0] * self.scale + self.mean, state

    def refine(self, state: torch.Tensor, guess: torch.Tensor, later: torch.Tensor | None, distance: torch.Tensor) -> torch.Tensor:
        """The latent to decode for a lost frame [B, D] (un-normalised, as `step` returns it):
        `state` the one after `step`, `later` [B, D] a buffered later frame's latent,
        `distance` [B] how many frames later (0: none). Without a refiner: the straight path."""
        later = torch.zeros_like(guess) if later is None else later
        if self.refiner is None:
            return straight_path(guess, later, distance)
        refined = self.refiner(state[-1], self.normalise(guess), self.normalise(later), distance)
        return refined * self.scale + self.mean

    def forward(self, latents: torch.Tensor, lost: torch.Tensor | None = None) -> torch.Tensor:
        """latents [B, T, D] as received; lost [B, T] (True: frame t did not arrive, the prediction
        made at t - 1 is played and fed back instead) -> predictions [B, T, D] of frame t + 1,
        made after frame t. In the normalised space (`normalise`), which training's loss uses."""
        x = (latents - self.mean) / self.scale
        batch, frames, _ = x.shape
        state = self.initial_state(batch).to(x)
        if lost is None or not bool(lost.any()):
            flags = x.new_zeros(batch, frames, 1)
            return self._predict(torch.cat([x, flags], dim=-1), x, state)[0]
        outputs = []
        previous = x.new_zeros(batch, x.shape[-1])  # before frame 0: the mean latent
        for t in range(frames):
            gone = lost[:, t, None].to(x.dtype)
            played = gone * previous + (1 - gone) * x[:, t]
            inputs = torch.cat([played, gone], dim=-1)[:, None]
            nxt, state = self._predict(inputs, played[:, None], state)
            previous = nxt[:, 0]
            outputs.append(previous)
        return torch.stack(outputs, dim=1)

    def played(self, latents: torch.Tensor, lost: torch.Tensor, distance: torch.Tensor) -> torch.Tensor:
        """What a receiver decodes (un-normalised [B, T, D]): latents [B, T, D] as received where
        `lost` [B, T] is False, else the refined guess, given the frame `distance` [B, T] frames
        later (0: none buffered; that frame must not be lost). Each frame played is fed back, as
        `receiver.concealment.NeuralConcealer` does; the first frame cannot be concealed."""
        batch, frames, _ = latents.shape
        state = self.initial_state(batch).to(latents)
        rows = torch.arange(batch)
        guess = latents[:, 0]
        out = []
        for t in range(frames):
            gone = lost[:, t, None].to(latents.dtype) if t else latents.new_zeros(batch, 1)
            if t and bool(lost[:, t].any()):
                later = latents[rows, (t + distance[:, t]).clamp(max=frames - 1)]
                guess = self.refine(state, guess, later, distance[:, t])
            played = gone * guess + (1 - gone) * latents[:, t]
            out.append(played)
            guess, state = self.step(played, gone[:, 0], state)
        return torch.stack(out, dim=1)

    def normalise(self, latents: torch.Tensor) -> torch.Tensor:
        return (latents - self.mean) / self.scale


class StreamingPredictor:
    """One stream's `LatentPredictor.step` in NumPy, for the receiver's per-frame path: a torch
    call a frame costs several times the arithmetic in dispatch (`python -m bench.concealment
    --cost`). Same predictions as the module within float rounding (tests/codec/test_concealment.py)."""

    def __init__(self, model: LatentPredictor) -> None:
        if model.cfg.layers != 1:
            raise ValueError("the NumPy step runs a one-layer predictor")

        def array(t: torch.Tensor) -> np.ndarray:
            return t.detach().float().numpy().copy()

        def gru_weight(name: str) -> np.ndarray:
            # nn.GRU registers its weights by name at run time: typed Tensor | Module by its stub.
            return array(model.gru.get_parameter(name))

        dim, self.hidden = model.cfg.latent_dim, model.cfg.hidden
        w_ih = gru_weight("weight_ih_l0")
        self.w_latent, self.w_flag = w_ih[:, :dim].copy(), w_ih[:, dim].copy()
        self.b_ih, self.w_hh, self.b_hh = gru_weight("bias_ih_l0"), gru_weight("weight_hh_l0"), gru_weight("bias_hh_l0")
        self.w_out, self.b_out = array(model.head.weight), array(model.head.bias)
        self.mean, self.scale = array(model.mean), array(model.scale)
        self.state = np.zeros(self.hidden, np.float32)
        self.has_refiner = model.refiner is not None
        self.reach = model.cfg.reach
        if model.refiner is not None:
            w_inner = array(model.refiner.inner.weight)
            # The inner layer's columns split by input: state, guess, later frame, distance one-hot.
            edges = np.cumsum([self.hidden, dim, dim])
            self.w_state, self.w_guess, self.w_later, self.w_where = np.split(w_inner, edges, axis=1)
            self.b_inner = array(model.refiner.inner.bias)
            self.w_refined, self.b_refined = array(model.refiner.out.weight), array(model.refiner.out.bias)

    def reset(self) -> None:
        self.state[:] = 0.0

    def step(self, latent: np.ndarray, predicted: bool) -> np.ndarray:
        """latent [D] played (received, or the last prediction) -> the next frame's latent [D]."""
        h, n = self.state, self.hidden
        x = (latent - self.mean) / self.scale
        gi = self.w_latent @ x + self.b_ih
        if predicted:
            gi += self.w_flag
        gh = self.w_hh @ h + self.b_hh
        reset_update = 1.0 / (1.0 + np.exp(-(gi[: 2 * n] + gh[: 2 * n])))
        candidate = np.tanh(gi[2 * n :] + reset_update[:n] * gh[2 * n :])
        update = reset_update[n:]
        self.state = (1.0 - update) * candidate + update * h
        return ((x + self.w_out @ self.state + self.b_out) * self.scale + self.mean).astype(np.float32)

    def refine(self, guess: np.ndarray, later: np.ndarray | None = None, distance: int = 0) -> np.ndarray:
        """`LatentPredictor.refine` for one frame: `guess` [D] from `step`, `later` [D] the latent
        of the frame `distance` frames on when the buffer holds it (beyond `reach`: ignored)."""
        if later is None or not 0 < distance <= self.reach:
            later, distance = None, 0
        if not self.has_refiner:
            return guess if later is None else straight_path(guess, later, distance).astype(np.float32)
        g = (guess - self.mean) / self.scale
        pre = self.w_state @ self.state + self.w_guess @ g + self.b_inner
        path = g
        if later is not None:
            later_n = (later - self.mean) / self.scale
            pre += self.w_later @ later_n
            path = straight_path(g, later_n, distance)
        pre += self.w_where[:, distance]
        hidden = 0.5 * pre * (1.0 + np.tanh(0.7978845608028654 * (pre + 0.044715 * pre**3)))
        return ((path + self.w_refined @ hidden + self.b_refined) * self.scale + self.mean).astype(np.float32)


def save_predictor(model: LatentPredictor, path: Path, extra: dict | None = None) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    torch.save({"config": asdict(model.cfg), "state": model.state_dict(), "extra": extra or {}}, path)


def load_predictor(path: Path = DEFAULT_PREDICTOR) -> LatentPredictor:
    blob = torch.load(path, map_location="cpu", weights_only=True)
    model = LatentPredictor(PredictorConfig(**blob["config"]))
    model.load_state_dict({k: v.float() for k, v in blob["state"].items()})
    return model.eval()
