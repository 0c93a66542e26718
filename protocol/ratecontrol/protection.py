"""Loss protection (as Opus LBRR / RED): earlier frames' coarse stages carried again.

Above `protect_above` loss each packet also carries the previous frame's coarsest
`redundant_layers`; above `protect_two_above` (heavy, bursty loss) as many earlier frames as fit
(up to MAX_REDUNDANT), spread to reach BURST_HORIZON_FRAMES back. Its bytes come out of the same
estimate as the primary stages, at most a third of it. The loss that switches it is held (the
peak of the loss windows, decaying over `memory_s`): bursty loss leaves clean windows between
bad ones, and protection that flickered off in them let the next burst through.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from protocol.packets import MAX_REDUNDANT
from protocol.ratecontrol.wire import stages_for_bps

REDUNDANT_BPS = 2_000.0  # each redundant copy's coarse stages, at most (fewer when the budget is short)
# Under heavy loss, one frame a packet if this much fits in 2/3 of the budget: a burst of lost
# packets then takes a fraction of the audio that packed frames would lose with it.
ONE_FRAME_MIN_BPS = 2_000.0


@dataclass(frozen=True)
class ProtectionSettings:
    redundant_layers: int | None = None  # each copy's coarse stages; None: REDUNDANT_BPS's worth
    protect_above: float = 0.02  # loss above which one copy rides along
    protect_two_above: float = 0.08  # heavy loss: as many copies as fit
    memory_s: float = 5.0  # time constant of the held loss's decay


class Protection:
    """The held loss and the redundancy it calls for (`enabled` False: never any)."""

    def __init__(self, settings: ProtectionSettings, enabled: bool, max_layers: int, bits_per_code: int, frame_s: float) -> None:
        self.settings = settings
        self.enabled = enabled
        self.bits = bits_per_code
        self.frame_s = frame_s
        self.red_layers = min(settings.redundant_layers or stages_for_bps(REDUNDANT_BPS, bits_per_code, frame_s), max_layers)
        self.min_layers_one_frame = min(stages_for_bps(ONE_FRAME_MIN_BPS, bits_per_code, frame_s), max_layers)
        self.held_loss = 0.0  # the loss protection follows: window peaks, decaying
        self._held_t: float | None = None

    @property
    def heavy_loss(self) -> bool:
        return self.enabled and self.held_loss > self.settings.protect_two_above

    def hold(self, now: float, loss: float) -> None:
        """One report's windowed packet loss."""
        decay = 0.0 if self._held_t is None else math.exp(-(now - self._held_t) / self.settings.memory_s)
        self.held_loss = max(loss, self.held_loss * decay)
        self._held_t = now

    def redundancy_bps(self, frames: int, fpp: float, layers: int | None = None) -> float:
        """The wire rate of `frames` copies of `layers` stages in each packet of `fpp` frames."""
        if frames == 0:
            return 0.0
        per_frame = 2 + math.ceil((layers or self.red_layers) * self.bits / 8)
        return 8 * (1 + frames * per_frame) / (fpp * self.frame_s)

    def choose(self, budget: float, fpp: float) -> tuple[int, int]:
        """(frames, layers) of redundancy wanted at the held loss, within a third of the budget:
        under heavy loss as many copies as fit (coverage of a burst first, then their layers)."""
        if not self.enabled:
            return 0, 0
        frames = MAX_REDUNDANT if self.heavy_loss else 1 if self.held_loss > self.settings.protect_above else 0
        while frames:
            fewest = 1 if frames <= 3 else min(2, self.red_layers)
            for layers in range(self.red_layers, fewest - 1, -1):
                if self.redundancy_bps(frames, fpp, layers) <= budget / 3:
                    return frames, layers
            frames -= 1
        return 0, 0
