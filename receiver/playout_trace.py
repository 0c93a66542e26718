"""What a live receiver rendered, period by period: recorded in a call, replayed offline.

A live call's quality mixes the network, the rate controller's stage counts, the playout
buffer's decisions and the concealer; live runs are too noisy to compare concealers by A/B.
`PlayoutTrace.add` (called by `receiver.incoming` for each period it renders, when a trace is
attached) keeps each period's decision: played (a primary or a redundant copy), concealed (a
lost frame), expanded (the buffer ran dry: audio stretched), with the frame index and the codes
decoded, and the frames decoded but not played (skipped or flushed for delay) before it.
`save` writes them with the audio that was sent to an .npz; `bench.concealment_replay` replays
that through each concealer (`ssvoip experiment ... --dump-trace`, docs/concealment.md).
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import IntEnum
from pathlib import Path

import numpy as np

from protocol.playout import Action, Playout


class Event(IntEnum):
    PLAY = 0
    PLAY_REDUNDANT = 1
    CONCEAL = 2
    EXPAND = 3
    SKIP = 4  # decoded to keep the decoder's state, not played (delay reduction)


_EVENT_OF_ACTION = {Action.PLAY: Event.PLAY, Action.PLAY_REDUNDANT: Event.PLAY_REDUNDANT, Action.CONCEAL: Event.CONCEAL, Action.EXPAND: Event.EXPAND}


@dataclass(frozen=True)
class Trace:
    """A recorded trace: `events` [N] (Event), `indices` [N] (the frame index, -1 where the
    buffer does not say: an expansion, a skipped frame), `codes` [N, stages] (-1 past a frame's
    stage count, all -1 for a period with no frame; for a concealed frame, the codes of the
    later frame the buffer held, which the concealer was given), `sent` [samples] the audio
    sent (float32), `model_id` the codec's, `distances` [N] how many frames after a concealed
    frame that later frame was (0 elsewhere; traces from before it was recorded: 1)."""

    events: np.ndarray
    indices: np.ndarray
    codes: np.ndarray
    sent: np.ndarray
    model_id: str
    distances: np.ndarray

    @property
    def layers(self) -> np.ndarray:
        """[N] stages each event's frame carried (0: none)."""
        return (self.codes >= 0).sum(1)


class PlayoutTrace:
    """Records what the playout buffer decided, one `add` a rendered period (O(1), no copies
    beyond the frame's own codes)."""

    def __init__(self, stages: int) -> None:
        self.stages = stages
        self._events: list[int] = []
        self._indices: list[int] = []
        self._codes: list[np.ndarray | None] = []
        self._distances: list[int] = []

    def __len__(self) -> int:
        return len(self._events)

    def add(self, decision: Playout) -> None:
        for skipped in decision.skipped:
            self._record(Event.SKIP, -1, skipped.codes)
        if decision.action is Action.WAIT:
            return
        index = -1 if decision.index is None else decision.index
        conceal = decision.action is Action.CONCEAL
        frame = decision.following if conceal else decision.frame  # what the concealer aimed at
        distance = decision.following_distance if conceal else 0
        self._record(_EVENT_OF_ACTION[decision.action], index, None if frame is None else frame.codes, distance)

    def _record(self, event: Event, index: int, codes: np.ndarray | None, distance: int = 0) -> None:
        self._events.append(int(event))
        self._indices.append(index)
        self._codes.append(codes)
        self._distances.append(distance)

    def trace(self, sent: np.ndarray, model_id: str) -> Trace:
        codes = np.full((len(self._codes), self.stages), -1, np.int16)
        for row, frame in zip(codes, self._codes):
            if frame is not None:
                row[: frame.size] = frame
        events, distances = np.array(self._events, np.int8), np.array(self._distances, np.int8)
        return Trace(events, np.array(self._indices, np.int32), codes, np.asarray(sent, np.float32), model_id, distances)

    def save(self, path: Path, sent: np.ndarray, model_id: str) -> None:
        t = self.trace(sent, model_id)
        np.savez_compressed(path, events=t.events, indices=t.indices, codes=t.codes, sent=t.sent, model_id=np.array(t.model_id), distances=t.distances)


def load_trace(path: Path) -> Trace:
    with np.load(path) as blob:
        events, codes = blob["events"], blob["codes"]
        if "distances" in blob:
            distances = blob["distances"]
        else:  # recorded when the buffer handed over the next frame only
            distances = ((events == Event.CONCEAL) & (codes >= 0).any(1)).astype(np.int8)
        return Trace(events, blob["indices"], codes, blob["sent"], str(blob["model_id"]), distances)
