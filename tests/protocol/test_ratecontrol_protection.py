"""Loss protection on its own: the held loss and the copies it calls for."""

from __future__ import annotations

import math

from protocol.packets import MAX_REDUNDANT
from protocol.ratecontrol import Protection, ProtectionSettings


def protection(enabled: bool = True) -> Protection:
    return Protection(ProtectionSettings(), enabled, max_layers=24, bits_per_code=10, frame_s=0.02)


def test_copies_follow_the_held_loss() -> None:
    p = protection()
    assert p.choose(40_000, 1) == (0, 0)
    p.hold(0.0, 0.05)
    frames, layers = p.choose(40_000, 1)
    assert frames == 1 and layers == p.red_layers and not p.heavy_loss
    p.hold(0.1, 0.2)
    assert p.heavy_loss and p.choose(1e9, 1) == (MAX_REDUNDANT, p.red_layers)


def test_the_held_loss_decays_with_its_memory() -> None:
    p = protection()
    p.hold(0.0, 0.2)
    p.hold(5.0, 0.0)  # one time constant later, a clean window
    assert math.isclose(p.held_loss, 0.2 / math.e)
    p.hold(6.0, 0.5)
    assert p.held_loss == 0.5  # a worse window takes over at once


def test_a_short_budget_trades_layers_then_copies() -> None:
    p = protection()
    p.hold(0.0, 0.3)
    frames, layers = p.choose(6_000, 1)
    assert 1 <= frames < MAX_REDUNDANT and p.redundancy_bps(frames, 1, layers) <= 6_000 / 3
    assert p.choose(10.0, 1) == (0, 0)


def test_disabled_protection_never_adds_copies() -> None:
    p = protection(enabled=False)
    p.hold(0.0, 0.5)
    assert not p.heavy_loss and p.choose(1e9, 1) == (0, 0)
