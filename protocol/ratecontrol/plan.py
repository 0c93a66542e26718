"""What planning reads (`PathReport`: one feedback report, as the path looked) and what it
writes (`SendPlan`: what the sender does with the next frames)."""

from __future__ import annotations

from dataclasses import dataclass

# Under heavy loss the redundant copies reach this many frames back: a burst of lost packets
# up to that long is bridged by the packets after it, if playout waits as deep
# (protocol/playout.py follows the copies it needed).
BURST_HORIZON_FRAMES = 8


@dataclass(frozen=True)
class PathReport:
    """The path as one feedback report shows it, handed to planning as an argument."""

    now: float  # the sender's clock
    queue_ms: float  # queueing delay, our own unsent bytes included
    queueing: bool  # above the estimator's overuse threshold: loss now is congestion
    draining: bool  # a drain episode is on: thin packets out if even the smallest plan overfills

    @classmethod
    def calm(cls, now: float = 0.0) -> "PathReport":
        """Before any feedback: nothing queued, nothing to drain."""
        return cls(now, 0.0, False, False)


@dataclass(frozen=True)
class SendPlan:
    """What the sender does with the next frames."""

    layers: int
    frames_per_packet: float  # whole, or halfway during a leap's trial (`protocol.packetizer.PacketSizer`)
    redundant_frames: int  # 0..MAX_REDUNDANT earlier frames carried again in each packet (coarse layers)
    redundant_layers: int
    wire_bps: float  # primary + redundancy, overhead included
    estimate_bps: float
    send_every: int = 1  # > 1 while draining a queue that even the smallest plan would feed
    redundant_spacing: int = 1  # frames between the redundant copies (spread over a loss burst)

    @property
    def redundant_backs(self) -> tuple[int, ...]:
        """How many frames before the packet's first frame each redundant copy lies."""
        return tuple(1 + i * self.redundant_spacing for i in range(self.redundant_frames))


def burst_spacing(copies: int, horizon: int = BURST_HORIZON_FRAMES) -> int:
    """Frames between `copies` redundant copies so that they reach `horizon` frames back:
    dense (1) when there are enough copies, spread otherwise, so that a burst leaves short
    holes that concealment bridges rather than one long gap."""
    return 1 if copies <= 1 else max(1, (horizon - 1) // (copies - 1))
