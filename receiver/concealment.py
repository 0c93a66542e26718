"""What to play for a frame that did not arrive in time.

The decoder is fed the last frame's codes again, faded by `fade` per frame (its state stays
continuous and the voice decays naturally, rather than a click to silence); after
`max_repeats` frames, comfort noise at -60 dBFS until real frames return.
"""

from __future__ import annotations

import numpy as np


class Concealer:
    def __init__(self, hop: int, fade: float = 0.6, max_repeats: int = 4, seed: int = 0) -> None:
        self.hop = hop
        self.fade = fade
        self.max_repeats = max_repeats
        self.run = 0  # consecutive concealed frames
        self._rng = np.random.default_rng(seed)
        self.last_codes: np.ndarray | None = None

    def received(self, codes: np.ndarray) -> None:
        self.last_codes = codes
        self.run = 0

    def plan(self) -> tuple[np.ndarray | None, float]:
        """(codes to decode again or None, gain to apply) for one missing frame."""
        self.run += 1
        if self.last_codes is None or self.run > self.max_repeats:
            return None, 0.0
        return self.last_codes, self.fade**self.run

    def comfort_noise(self) -> np.ndarray:
        return (self._rng.standard_normal(self.hop) * 1e-3).astype(np.float32)
