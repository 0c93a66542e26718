"""Writing a training checkpoint so that a run killed mid-write still resumes from the last one,
and (`SmallRun`) the checkpoint of the small trainers that hold one model, one optimiser, one
schedule and one NumPy generator (the latent predictor's and its refiner's)."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch


def save_atomically(state: dict[str, Any], path: Path) -> None:
    """`torch.save` to a sibling temporary file, then rename it over `path` (atomic on one filesystem)."""
    tmp = path.with_suffix(".tmp")
    torch.save(state, tmp)
    tmp.replace(path)


@dataclass
class SmallRun:
    """What a small trainer resumes exactly: the model, its optimiser and schedule, the NumPy
    generator that draws its batches, and torch's generator."""

    model: torch.nn.Module
    optimiser: torch.optim.Optimizer
    schedule: torch.optim.lr_scheduler.LRScheduler
    rng: np.random.Generator

    def save(self, path: Path, step: int) -> None:
        state = {
            "model": self.model.state_dict(),
            "optimiser": self.optimiser.state_dict(),
            "schedule": self.schedule.state_dict(),
            "rng": self.rng.bit_generator.state,
            "torch_rng": torch.get_rng_state(),
            "step": step,
        }
        save_atomically(state, path)

    def resume(self, path: Path) -> int:
        """The step to go on from: the checkpoint's, its state restored; 0 without one."""
        if not path.exists():
            return 0
        state = torch.load(path, map_location="cpu", weights_only=False)
        self.model.load_state_dict(state["model"])
        self.optimiser.load_state_dict(state["optimiser"])
        self.schedule.load_state_dict(state["schedule"])
        self.rng.bit_generator.state = state["rng"]
        torch.set_rng_state(state["torch_rng"])
        return int(state["step"])
