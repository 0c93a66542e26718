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


def save_predictor(model: LatentPredictor, path: Path, extra: dict | None = None) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    torch.save({"config": asdict(model.cfg), "state": model.state_dict(), "extra": extra or {}}, path)


def load_predictor(path: Path = DEFAULT_PREDICTOR) -> LatentPredictor:
    blob = torch.load(path, map_location="cpu", weights_only=True)
    model = LatentPredictor(PredictorConfig(**blob["config"]))
    model.load_state_dict({k: v.float() for k, v in blob["state"].items()})
    return model.eval()
