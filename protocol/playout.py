"""The playout (jitter) buffer: reorder, drop late and duplicate frames, hold a target delay.

Sans-I/O: `push` is called with each received frame and its arrival time, `pop` once per
frame period by the playback clock (the sound card's, which may run a few hundred ppm off
the sender's). Every decision is returned, nothing is played here.

Target delay (NetEq-like): each frame's relative delay is its arrival time minus the media
time of its packet's last frame (the network's share), measured against the fastest of the
last `window_s` seconds; the target is the `percentile` of those delays, plus what the recent
packing itself costs ((frames a packet - 1) x 20 ms for a packet's first frame), plus
`margin_ms`, within [min_delay_ms, max_delay_ms]. It rises
as soon as jitter does. It falls `window_s` after the jitter ends, or after `short_window_s`
when the recent arrivals spread far less than the long window's (a queue that built and
drained is no jitter: it is capped at twice the recent spread). Under bursty loss it also
covers the redundant copies that stood in for missing frames (the third-deepest in
`recovery_window_s`), so that they arrive in time. Under loss that no redundancy covers (no
copy came in `recovery_window_s`: the sender does not protect) it holds one packet more once
`_LOSSES_TO_WAIT` frames were lost in that window: a lost packet's frames are then concealed
in place, with the next packet already here to aim at, instead of the buffer running dry,
stretching and jumping (loss-10 without protection: PESQ-WB 2.14-2.25 against 1.44-1.87,
mouth-to-ear +40-60 ms; docs/protocol.md). With copies coming, the recoveries set the depth.
`next_deadline()` says when to play the next frame so that the playout clock's phase follows
the arrivals.

Playing:
- the next frame is here: play it (a redundant copy if only that arrived);
- it is missing but later frames are here: conceal it and move on (a loss);
- nothing is here: conceal without moving on (the buffer ran dry: this stretches the
  audio and so raises the delay, as NetEq's expand does), and keep doing so until the
  buffer holds the target again (a slow sender clock or a jitter spike costs one such
  refill, not a stutter of single-frame gaps);
- more than `target + slack` frames are buffered for a while, or more than the target
  through the whole last `short_window_s` (frames no arrival needed: the buffer never came
  down to its target, so it is a frame or more behind its deadlines): skip the next frame if
  the sender marked it quiet (decoded to keep the decoder's state, not played): this
  shortens the delay in pauses and absorbs a sender clock that runs fast. If the excess
  lasts through continuous speech (`speech_skip_after_pops`), speech frames go too, one per
  `skip_after_pops` (4 % faster): a 20 ms glitch every half second beats a lasting delay;
- far more than that (`flush_excess_ms`, e.g. a drained queue's second of stale audio
  arriving at once): flush to the target at once.
"""

from __future__ import annotations

import bisect
import math
from collections import deque
from collections.abc import Container
from dataclasses import dataclass, field
from enum import Enum

from protocol.packets import TS_MODULO, Frame


_TRUSTED_AFTER = 50  # frames
# How far past a lost frame the buffer looks for a frame to hand the concealer (a packet of
# 2-3 frames lost whole leaves the next one 3 frames on; the latent refiner learnt up to 4).
FOLLOWING_REACH = 4


def nearest_later(index: int, here: Container[int]) -> int:
    """How many frames after `index` the nearest frame in `here` is, within FOLLOWING_REACH (0: none)."""
    return next((d for d in range(1, FOLLOWING_REACH + 1) if index + d in here), 0)


class Action(Enum):
    WAIT = "wait"  # not started yet: play silence
    PLAY = "play"
    PLAY_REDUNDANT = "play_redundant"
    CONCEAL = "conceal"  # a lost frame: conceal and move on
    EXPAND = "expand"  # the buffer ran dry: conceal and wait for the frame


@dataclass
class Playout:
    action: Action
    frame: Frame | None = None
    skipped: list[Frame] = field(default_factory=list)  # decode, do not play (delay reduction)
    index: int | None = None  # the frame index this period plays or conceals (None: expand, wait)
    # For a concealed frame: the nearest later frame already here (within FOLLOWING_REACH),
    # `following_distance` frames on: the concealer can aim its guess at where playback
    # resumes (NetEq's merge uses the future frame the same way).
    following: Frame | None = None
    following_distance: int = 0


@dataclass
class PlayoutStats:
    played: int = 0
    redundant: int = 0
    concealed: int = 0
    expanded: int = 0
    skipped: int = 0
    skipped_speech: int = 0  # of `skipped`, frames not marked quiet (a long excess in continuous speech)
    jumped: int = 0  # frames never played after an outage: playout resumed at the first that came
    jumped_ahead: int = 0  # frames never played because one arrived `max_frames` ahead: playout restarted there
    resets: int = 0  # jumps beyond `max_jump_s`: a new time line, not a gap of lost frames
    flushed: int = 0  # frames dropped at once to win back a large excess delay (speech too)
    late: int = 0
    duplicate: int = 0

    @property
    def dropped(self) -> int:
        """Frames that reached the buffer's time line but were never played, for any reason."""
        return self.skipped + self.jumped + self.jumped_ahead + self.flushed

    @property
    def concealed_fraction(self) -> float:
        total = self.played + self.redundant + self.concealed + self.expanded
        return (self.concealed + self.expanded) / total if total else 0.0


@dataclass
class _Slot:
    frame: Frame
    redundant: bool
    quiet: bool = False


_RECOVERIES_TO_WAIT = 3  # deep recoveries in the window before playout waits for them
_LOSSES_TO_WAIT = 3  # lost frames (concealed, or resumed past) in the window before playout holds a packet more
# Recoveries remembered (the newest): heavy bursty loss with dense copies makes many a second;
# a flood of copies for missing frames must not grow the list (or the work) past this.
_MAX_RECOVERIES = 512
_WARM_FRAMES = 3  # frames decoded (not played) before playout resumes after a flush


def _remove(ordered: list, value) -> None:
    """Remove one `value` from a sorted list (it is there)."""
    del ordered[bisect.bisect_left(ordered, value)]


class PlayoutBuffer:
    def __init__(
        self,
        hop: int,
        sample_rate: int,
        initial_delay_ms: float = 20.0,
        min_delay_ms: float = 15.0,
        max_delay_ms: float = 500.0,
        percentile: float = 0.95,
        margin_ms: float = 5.0,
        window_s: float = 10.0,
        short_window_s: float = 2.0,
        recovery_window_s: float = 5.0,
        slack_frames: int = 2,
        skip_after_pops: int = 25,
        speech_skip_after_pops: int = 50,
        max_frames: int = 100,
        flush_excess_ms: float = 200.0,
        flush_after_pops: int = 5,
        max_jump_s: float = 5.0,
    ) -> None:
        self.hop = hop
        self.frame_s = hop / sample_rate
        self.min_delay_s = min_delay_ms / 1000
        self.max_delay_s = max_delay_ms / 1000
        self.percentile = percentile
        self.window = max(1, int(round(window_s / self.frame_s)))
        self.short_window = max(1, int(round(short_window_s / self.frame_s)))
        self.recovery_window_s = recovery_window_s
        self._recoveries: deque[tuple[float, int]] = deque()  # (arrival, frames the copy came after the newest)
        self._recovery_depths: list[int] = []  # the same depths, sorted
        self._newest: int | None = None  # the newest primary frame index seen
        self._concealed_recently: deque[int] = deque(maxlen=64)  # frame indices concealed lately
        self._losses: deque[float] = deque(maxlen=64)  # when frames were found lost (concealed, or resumed past)
        self._last_copy: float | None = None  # when a redundant copy last arrived (the sender protects)
        self.slack = slack_frames
        self.skip_after = skip_after_pops
        self.speech_skip_after = speech_skip_after_pops
        self.max_frames = max_frames
        self.max_jump = max(max_frames, int(round(max_jump_s / self.frame_s)))
        self.flush_excess_s = flush_excess_ms / 1000
        self.flush_after = flush_after_pops
        self._flush_over = 0
        self.stats = PlayoutStats()
        self.margin_s = margin_ms / 1000
        self._floor: float | None = None  # smallest (arrival - media time) in the window
        self._initial_s = max(self.min_delay_s, min(self.max_delay_s, initial_delay_ms / 1000))
        self._target_s = self._initial_s
        self._slots: dict[int, _Slot] = {}
        self._delays: deque[tuple[float, float]] = deque()  # (arrival - media time of the packet's last frame, arrival)
        # The same delays sorted, for the whole window and for its last `short_window`: the floor
        # and the percentiles are then lookups, and a frame costs O(log n) searches, not sorts.
        self._sorted_delays: list[float] = []
        self._sorted_recent: list[float] = []
        self._packing: deque[int] = deque(maxlen=self.short_window)  # frames a packet, recent arrivals
        self._next: int | None = None  # frame index to play next
        self._ts_base: int | None = None  # first timestamp (for unwrapping)
        self._ts_cycles = 0
        self._last_ts = 0
        self._first_arrival: float | None = None
        self._started = False
        self._refilling = False
        self._over_since = 0
        self._levels: deque[int] = deque(maxlen=self.short_window)  # frames buffered before each recent pop
        self.draining = False  # the stream ended: play what is left without waiting to refill

    # ---- input ------------------------------------------------------------------------------------
    def _index(self, timestamp: int) -> int:
        """Unwrap a 32-bit sample timestamp into a frame index counted from the first one."""
        if self._ts_base is None:
            self._ts_base = timestamp
            self._last_ts = timestamp
        delta = (timestamp - self._last_ts) % TS_MODULO
        if delta < TS_MODULO // 2:  # forward (possibly across the wrap)
            if timestamp < self._last_ts:
                self._ts_cycles += TS_MODULO
            self._last_ts = timestamp
            unwrapped = self._ts_cycles + timestamp
        else:  # an older timestamp
            unwrapped = self._ts_cycles + timestamp - (TS_MODULO if timestamp > self._last_ts else 0)
        return (unwrapped - self._ts_base) // self.hop

    def push(
        self, timestamp: int, frame: Frame, arrival: float, redundant: bool = False, quiet: bool = False, packet_frames: int = 1, position: int = 0
    ) -> str:
        """Offer one frame (the `position`-th of a packet of `packet_frames`); returns "queued",
        "late", "duplicate" or "replaced" (primary over redundant)."""
        index = self._index(timestamp)
        if self._first_arrival is None:
            self._first_arrival = arrival
            self._next = index
        assert self._next is not None  # set with the first arrival
        if redundant:
            self._last_copy = arrival
        else:
            self._note_delay(index + packet_frames - 1 - position, arrival, packet_frames)
        missing = index not in self._slots and (index >= self._next or index in self._concealed_recently)
        if redundant and missing and self._newest is not None:
            # A copy of a frame whose primary is missing: playout should wait this deep.
            self._note_recovery(arrival, self._newest - index + 1)
        elif not redundant:
            self._newest = index if self._newest is None else max(self._newest, index)
        if index < self._next:
            if not redundant:
                self.stats.late += 1
            return "late"
        slot = self._slots.get(index)
        if slot is not None:
            if slot.redundant and not redundant:
                self._slots[index] = _Slot(frame, False, quiet)
                return "replaced"
            if not redundant:
                self.stats.duplicate += 1
            return "duplicate"
        if index - self._next >= self.max_frames:  # far ahead of playout: a jump; start over there
            # Everything from the next frame up to this one goes unplayed (what was buffered and
            # the gap): a sender running faster than real time loses frames here, and must show it.
            # A jump beyond `max_jump` (seconds of media at once) is no sender that runs fast but
            # a new time line (or a hostile one, whose far timestamp would count millions of
            # frames): only what was buffered is lost, and the reset is counted.
            if index - self._next > self.max_jump:
                self.stats.resets += 1
                self.stats.jumped_ahead += len(self._slots)
            else:
                self.stats.jumped_ahead += index - self._next
            self._slots.clear()
            self._next = index
        self._slots[index] = _Slot(frame, redundant, quiet)
        return "queued"

    def _note_delay(self, index: int, arrival: float, packet_frames: int = 1) -> None:
        """`index`: the packet's last frame. Delays are the network's (arrival against the time
        the packet could leave); the packing's own delay, (frames - 1) x 20 ms for a packet's
        first frame, is added for the packing of the last `short_window` frames only: a call
        that starts on packed frames and moves to one frame a packet drops that delay at once,
        where the long window of per-frame delays would hold it."""
        self._packing.append(packet_frames)
        delay = arrival - index * self.frame_s
        self._delays.append((delay, arrival))
        bisect.insort(self._sorted_delays, delay)
        bisect.insort(self._sorted_recent, delay)
        if len(self._delays) > self.short_window:  # the delay that leaves the short window
            _remove(self._sorted_recent, self._delays[-self.short_window - 1][0])
        while len(self._delays) > self.window:
            _remove(self._sorted_delays, self._delays.popleft()[0])
        floor = self._sorted_delays[0]
        self._floor = floor
        high = self._percentile(self._sorted_delays) - floor
        # A queue that built and drained (a capacity drop) is no jitter: once the last
        # `short_window` arrivals spread far less than the long window's, the long window's
        # spike stops setting the target (at most twice the recent spread, plus the margin),
        # instead of holding a second of delay for the whole long window.
        recent = self._percentile(self._sorted_recent) - floor
        high = max(recent, min(high, 2 * recent + self.margin_s))
        # Under bursty loss with redundancy, wait long enough for the copies to arrive: as
        # deep as the third-deepest copy that stood in for a missing frame in the last
        # `recovery_window_s` (an odd double loss in random loss does not buy 100 ms of delay;
        # bursts every second do).
        while self._recoveries and arrival - self._recoveries[0][0] > self.recovery_window_s:
            _remove(self._recovery_depths, self._recoveries.popleft()[1])
        if len(self._recoveries) >= _RECOVERIES_TO_WAIT:
            depth = self._recovery_depths[-_RECOVERIES_TO_WAIT]
            high = max(high, depth * self.frame_s)
        while self._losses and arrival - self._losses[0] > self.recovery_window_s:
            self._losses.popleft()
        packing = max(self._packing)
        # A lost packet's frames are due before the next packet comes: without a packet more
        # the buffer runs dry there (stretch, then jump), with it they are concealed in place.
        unprotected = self._last_copy is None or arrival - self._last_copy > self.recovery_window_s
        hold = packing if unprotected and len(self._losses) >= _LOSSES_TO_WAIT else 0
        high += (packing - 1 + hold) * self.frame_s
        target = max(self.min_delay_s, min(self.max_delay_s, high + self.margin_s))
        # Until a second of arrivals has been seen, the estimate is too young to go below the start.
        self._target_s = target if len(self._delays) >= _TRUSTED_AFTER else max(target, self._initial_s)

    def _note_recovery(self, arrival: float, depth: int) -> None:
        if len(self._recoveries) >= _MAX_RECOVERIES:
            _remove(self._recovery_depths, self._recoveries.popleft()[1])
        self._recoveries.append((arrival, depth))
        bisect.insort(self._recovery_depths, depth)

    def _percentile(self, ordered: list[float]) -> float:
        """The percentile of sorted values."""
        return ordered[min(len(ordered) - 1, int(math.ceil(self.percentile * len(ordered))) - 1)]

    # ---- output -----------------------------------------------------------------------------------
    @property
    def target_ms(self) -> float:
        return 1000 * self._target_s

    @property
    def queue_delay_ms(self) -> float:
        """How far the latest frame arrived above the fastest path of the window (queueing)."""
        if not self._delays or self._floor is None:
            return 0.0
        return 1000 * (self._delays[-1][0] - self._floor)

    @property
    def target_frames(self) -> int:
        return max(1, math.ceil(self._target_s / self.frame_s - 1e-9))

    @property
    def buffered_frames(self) -> int:
        """Frames from the next one to play up to the newest received (gaps included)."""
        if self._next is None or not self._slots:
            return 0
        return max(self._slots) - self._next + 1

    @property
    def level_ms(self) -> float:
        return 1000 * self.buffered_frames * self.frame_s

    def next_deadline(self) -> float | None:
        """When the next frame should be played: its expected arrival on the fastest path
        seen lately, plus the target delay. A playout loop that pops at these instants (and
        not before the previous frame has played) adds no phase delay of its own."""
        if self._floor is None or self._next is None:
            return None
        return self._floor + self._next * self.frame_s + self._target_s

    def pop(self, now: float) -> Playout:
        """What to play for the next frame period."""
        if not self._started:
            if self._first_arrival is None or now - self._first_arrival < self._target_s - 1e-9:
                return Playout(Action.WAIT)
            self._started = True
        assert self._next is not None
        if self._refilling and self.buffered_frames < self.target_frames and not self.draining:
            self.stats.expanded += 1
            return Playout(Action.EXPAND)
        after_outage, self._refilling = self._refilling, False
        if after_outage and self._next not in self._slots and self._slots:
            # The buffer ran dry and the frames that come back start later (the sender skipped
            # or the network lost a stretch): the expansion already stood in for the missing
            # frames, so resume at the first that came instead of concealing each one again
            # (which would add the whole gap to the delay). NetEq's merge does the same.
            first = min(self._slots)
            self.stats.jumped += first - self._next
            self._losses.extend([now] * min(first - self._next, 3))  # lost, not late: a long outage counts no more than a few
            self._next = first
        skipped = self._maybe_flush() + self._maybe_skip()
        index = self._next
        slot = self._slots.pop(self._next, None)
        if slot is not None:
            self._next += 1
            if slot.redundant:
                self.stats.redundant += 1
                return Playout(Action.PLAY_REDUNDANT, slot.frame, skipped, index)
            self.stats.played += 1
            return Playout(Action.PLAY, slot.frame, skipped, index)
        if self._slots:  # later frames are here: this one is lost
            self._concealed_recently.append(self._next)
            self._losses.append(now)
            self._next += 1
            self.stats.concealed += 1
            distance = nearest_later(index, self._slots)
            if distance:
                return Playout(Action.CONCEAL, None, skipped, index, self._slots[index + distance].frame, distance)
            return Playout(Action.CONCEAL, None, skipped, index)
        self.stats.expanded += 1
        self._refilling = True
        return Playout(Action.EXPAND, None, skipped)

    def _maybe_flush(self) -> list[Frame]:
        """Drop everything beyond the target at once when the buffer holds far too much.

        Skipping quiet frames wins back delay 20 ms at a time; after a queue drains in a
        burst (a capacity drop), the buffer can hold a second of audio above its target, which
        would stay as mouth-to-ear delay through continuous speech. Above `flush_excess_ms`
        over target + slack for `flush_after_pops` periods, playout moves to the frame that
        leaves exactly the target buffered, as NetEq flushes an overfull buffer. The last few
        dropped frames are decoded, not played, to warm the decoder's state.
        """
        excess = self.buffered_frames - self.target_frames - self.slack
        if excess * self.frame_s <= self.flush_excess_s:
            self._flush_over = 0
            return []
        self._flush_over += 1
        if self._flush_over < self.flush_after:
            return []
        self._flush_over = 0
        assert self._next is not None
        resume = max(self._slots) - self.target_frames + 1
        dropped = [self._slots.pop(i) for i in range(self._next, resume) if i in self._slots]
        self.stats.flushed += resume - self._next
        self._next = resume
        self._levels.clear()
        return [slot.frame for slot in dropped[-_WARM_FRAMES:]]

    def _maybe_skip(self) -> list[Frame]:
        """One frame skipped after the buffer stayed above target + slack for a while, or
        above the target through the whole short window (its lowest level over the last
        `short_window` pops: frames that no late arrival needed). Stopping at target + slack
        left a call that started on packed frames above its target for good, and skipping down
        to target + 1 a frame behind its deadlines (docs/protocol.md, "Playout buffer")."""
        level = self.buffered_frames
        self._levels.append(level)
        over_slack = level > self.target_frames + self.slack
        idle = len(self._levels) == self._levels.maxlen and min(self._levels) > self.target_frames
        if over_slack or idle:
            self._over_since += 1
        else:
            self._over_since = 0
        slot = None if self._next is None else self._slots.get(self._next)
        if self._over_since < self.skip_after or slot is None:
            return []
        assert self._next is not None  # a frame is buffered at it
        if slot.quiet:
            self._over_since = 0
        elif self._over_since >= self.speech_skip_after:
            # Continuous speech gives no pause to drop: after `speech_skip_after` periods over
            # target, a speech frame goes too (decoded, not played), then one every
            # `skip_after` periods while the excess lasts: 20 ms in 0.5 s, 4 % faster.
            self._over_since = self.speech_skip_after - self.skip_after
            self.stats.skipped_speech += 1
        else:
            return []  # frames the sender marked quiet go first
        for i in range(len(self._levels)):  # each of those moments would have held one frame less
            self._levels[i] -= 1
        self.stats.skipped += 1
        slot = self._slots.pop(self._next)
        self._next += 1
        return [slot.frame]
