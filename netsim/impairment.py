"""One direction of an impaired network path, as pure code (sans-I/O).

`ImpairedPath` is what the relays, the experiment runner and the tests share: it gets packets
(`submit(data, now)`) and hands them back when they are due (`due(now)`), with time passed in
and randomness from a seeded `random.Random`, so that a test can push 100 000 packets through
it in simulated time and measure the loss rate, the delay distribution and the throughput
against the settings, and so that the asyncio relays stay thin.

What a packet meets, in order:
1. **loss** (Bernoulli, or Gilbert-Elliott bursts). Lost packets never reach the bottleneck,
   so they do not use capacity (as netem's loss, which is applied at enqueue).
2. **the bottleneck**: a link of `rate_kbps` that sends one packet after another, each costing
   its wire bytes (payload + `overhead_bytes` per `segment_bytes` of payload), in front of it a
   drop-tail queue of `queue_bytes` or `queue_ms`. A packet that does not fit is dropped.
3. **propagation delay** `delay_ms` plus **jitter** (normal: `jitter_ms` is the standard
   deviation; uniform: the half-width), never below zero. In datagram mode (UDP) packets are
   delivered by their own arrival time, so jitter reorders them; in stream mode (TCP) a chunk
   never arrives before the previous one (jitter delays the stream but keeps its order).

Stream mode cannot drop bytes (TCP retransmits them): a loss is modelled as the chunk (and,
since delivery stays in order, everything behind it) arriving `tcp_rto_ms` later, doubling for
each further loss of the same chunk, as TCP's retransmission timeout does. The queue limit
does not drop either: `accepting(now)` turns False and the relay stops reading, so the
sender's own socket buffer fills, as it would behind a real bottleneck.
"""

from __future__ import annotations

import heapq
import math
import random
from dataclasses import dataclass
from typing import Annotated, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

MAX_RETRANSMISSIONS = 6  # stream mode: a chunk lost this many times in a row goes through anyway
_EPS = 1e-6  # float slack in queue limits (the backlog is a time, not a byte count)


def one_line_error(err: ValidationError) -> str:
    """The first problem pydantic found, as `field.path: message` on one line."""
    first = err.errors()[0]
    where = ".".join(str(p) for p in first["loc"])
    msg = str(first["msg"]).removeprefix("Value error, ")
    return f"{where}: {msg}" if where else msg


class _Frozen(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class BernoulliLoss(_Frozen):
    """Each packet lost independently with probability `rate`."""

    kind: Literal["bernoulli"] = "bernoulli"
    rate: float = Field(ge=0.0, le=1.0)

    def mean_loss(self) -> float:
        return self.rate


class GilbertElliottLoss(_Frozen):
    """Two-state Markov loss: bursts of loss in the bad state, (almost) none in the good one.

    The state moves once per packet, before the packet's fate is drawn. With `loss_bad` = 1 and
    `loss_good` = 0 the mean burst is 1 / `p_bad_good` packets and the average loss is the
    bad state's share, p_good_bad / (p_good_bad + p_bad_good).
    """

    kind: Literal["gilbert_elliott"] = "gilbert_elliott"
    p_good_bad: float = Field(ge=0.0, le=1.0)
    p_bad_good: float = Field(gt=0.0, le=1.0)
    loss_bad: float = Field(default=1.0, ge=0.0, le=1.0)
    loss_good: float = Field(default=0.0, ge=0.0, le=1.0)

    @classmethod
    def from_average(cls, loss: float, mean_burst: float) -> GilbertElliottLoss:
        """The chain with average loss `loss` in bursts of `mean_burst` packets on average."""
        if not 0.0 <= loss < 1.0:
            raise ValueError(f"average loss must be in [0, 1), got {loss}")
        if mean_burst < 1.0:
            raise ValueError(f"mean burst must be at least 1 packet, got {mean_burst}")
        p_bad_good = 1.0 / mean_burst
        return cls(p_good_bad=min(1.0, loss * p_bad_good / (1.0 - loss)), p_bad_good=p_bad_good)

    def bad_share(self) -> float:
        return self.p_good_bad / (self.p_good_bad + self.p_bad_good)

    def mean_loss(self) -> float:
        bad = self.bad_share()
        return bad * self.loss_bad + (1.0 - bad) * self.loss_good


LossModel = Annotated[BernoulliLoss | GilbertElliottLoss, Field(discriminator="kind")]


class ImpairmentConfig(_Frozen):
    """The impairments of one direction of a path; the default impairs nothing."""

    loss: LossModel | None = None
    delay_ms: float = Field(default=0.0, ge=0.0, le=60_000)
    jitter_ms: float = Field(default=0.0, ge=0.0, le=60_000)
    jitter_distribution: Literal["normal", "uniform"] = "normal"
    rate_kbps: float | None = Field(default=None, gt=0.0)  # kbit/s of wire bytes; None: no cap
    queue_bytes: int | None = Field(default=None, gt=0)  # drop-tail limit (wire bytes, this packet included)
    queue_ms: float | None = Field(default=None, gt=0.0)  # or: the longest wait before sending starts
    overhead_bytes: int = Field(default=0, ge=0, le=65_535)  # counted against the cap per segment
    segment_bytes: int = Field(default=1448, gt=0)  # payload bytes a segment carries (TCP MSS)
    tcp_rto_ms: float = Field(default=200.0, gt=0.0, le=60_000)  # stream mode: what a loss costs

    @model_validator(mode="after")
    def _one_queue_limit(self) -> ImpairmentConfig:
        if self.queue_bytes is not None and self.queue_ms is not None:
            raise ValueError("give queue_bytes or queue_ms, not both")
        if (self.queue_bytes is not None or self.queue_ms is not None) and self.rate_kbps is None:
            raise ValueError("a queue limit needs a rate cap (rate_kbps)")
        return self

    def is_clear(self) -> bool:
        """True when this config changes nothing (the path is a pass-through)."""
        lossless = self.loss is None or self.loss.mean_loss() == 0.0
        return lossless and self.delay_ms == 0 and self.jitter_ms == 0 and self.rate_kbps is None

    def wire_bytes(self, payload_bytes: int) -> int:
        """Bytes this payload costs on the wire: payload + overhead for each segment."""
        segments = max(1, math.ceil(payload_bytes / self.segment_bytes))
        return payload_bytes + segments * self.overhead_bytes


@dataclass
class PathCounters:
    """What happened to the traffic of one path (packets, or chunks in stream mode)."""

    sent: int = 0
    sent_bytes: int = 0
    dropped_loss: int = 0
    dropped_loss_bytes: int = 0
    dropped_queue: int = 0
    dropped_queue_bytes: int = 0
    retransmitted: int = 0  # stream mode: losses turned into an RTO of delay
    delivered: int = 0
    delivered_bytes: int = 0
    delivered_wire_bytes: int = 0  # delivered bytes plus their overhead


Mode = Literal["datagram", "stream"]


class ImpairedPath:
    """One direction of a link: `submit` packets now, collect them from `due` later.

    `mode` is "datagram" (UDP: loss drops, jitter may reorder, a full queue drops) or
    "stream" (TCP: nothing is dropped or reordered; loss costs an RTO of delay, a full queue
    stops the reader through `accepting`). While disarmed the path passes packets through
    untouched (still in order in stream mode) and counts them as sent and delivered only.
    """

    def __init__(self, config: ImpairmentConfig | None = None, *, mode: Mode = "datagram", rng: random.Random | int | None = 0, armed: bool = True) -> None:
        if mode not in ("datagram", "stream"):
            raise ValueError(f"mode must be 'datagram' or 'stream', got {mode!r}")
        self.mode: Mode = mode
        self.config = config if config is not None else ImpairmentConfig()
        self.rng = rng if isinstance(rng, random.Random) else random.Random(rng)
        self.armed = armed
        self.counters = PathCounters()
        self._bad = False  # Gilbert-Elliott state
        self._link_free_at = -math.inf  # when the bottleneck finishes its last scheduled packet
        self._last_arrival = -math.inf  # stream mode: the order floor
        self._heap: list[tuple[float, int, bytes, int]] = []  # (arrival, seq, data, wire bytes)
        self._seq = 0

    # -- control ---------------------------------------------------------------------------
    def set_config(self, config: ImpairmentConfig) -> None:
        """Switch impairments live. Packets already scheduled keep their times; the loss
        chain keeps its state unless the new config has no Gilbert-Elliott loss."""
        if not isinstance(config.loss, GilbertElliottLoss):
            self._bad = False
        self.config = config

    def arm(self) -> None:
        self.armed = True

    def disarm(self) -> None:
        self.armed = False

    # -- traffic ---------------------------------------------------------------------------
    def submit(self, data: bytes, now: float) -> None:
        """Offer one packet (or stream chunk) at time `now` (seconds, any monotonic origin)."""
        size = len(data)
        c = self.counters
        c.sent += 1
        c.sent_bytes += size
        cfg = self.config
        wire = cfg.wire_bytes(size)
        if not self.armed:
            self._schedule(now, data, wire)
            return
        extra = 0.0
        if self.mode == "datagram":
            if self._lost():
                c.dropped_loss += 1
                c.dropped_loss_bytes += size
                return
        else:
            extra = self._retransmission_delay(size)
        departure = now
        if cfg.rate_kbps is not None:
            start = max(now, self._link_free_at)
            if self.mode == "datagram" and self._queue_full(start - now, wire):
                c.dropped_queue += 1
                c.dropped_queue_bytes += size
                return
            departure = start + wire * 8 / (cfg.rate_kbps * 1000)
            self._link_free_at = departure
        self._schedule(departure + extra + self._delay_s(), data, wire)

    def due(self, now: float) -> list[bytes]:
        """Every packet whose arrival time is at or before `now`, in arrival order."""
        out: list[bytes] = []
        heap = self._heap
        c = self.counters
        while heap and heap[0][0] <= now:
            _, _, data, wire = heapq.heappop(heap)
            c.delivered += 1
            c.delivered_bytes += len(data)
            c.delivered_wire_bytes += wire
            out.append(data)
        return out

    def next_due_time(self) -> float | None:
        """When the next packet arrives (None when nothing is in flight)."""
        return self._heap[0][0] if self._heap else None

    @property
    def in_flight(self) -> int:
        return len(self._heap)

    def backlog_bytes(self, now: float) -> float:
        """Wire bytes waiting for (or in) the bottleneck at `now`: the queue the cap builds."""
        rate = self.config.rate_kbps
        if rate is None:
            return 0.0
        return max(0.0, self._link_free_at - now) * rate * 1000 / 8

    def accepting(self, now: float) -> bool:
        """Stream mode back-pressure: False while the bottleneck queue is over its limit."""
        return self.next_accept_time(now) <= now

    def next_accept_time(self, now: float) -> float:
        """The earliest time at which `accepting` is True again (`now` if it is already)."""
        cfg = self.config
        if cfg.rate_kbps is None or not self.armed:
            return now
        if cfg.queue_ms is not None:
            limit_s = cfg.queue_ms / 1000
        elif cfg.queue_bytes is not None:
            limit_s = cfg.queue_bytes * 8 / (cfg.rate_kbps * 1000)
        else:
            return now
        return max(now, self._link_free_at - limit_s)

    # -- internals -------------------------------------------------------------------------
    def _schedule(self, arrival: float, data: bytes, wire: int) -> None:
        if self.mode == "stream":
            arrival = max(arrival, self._last_arrival)
            self._last_arrival = arrival
        heapq.heappush(self._heap, (arrival, self._seq, data, wire))
        self._seq += 1

    def _lost(self) -> bool:
        loss = self.config.loss
        if loss is None:
            return False
        if isinstance(loss, BernoulliLoss):
            return loss.rate > 0 and self.rng.random() < loss.rate
        # Gilbert-Elliott: move the chain, then draw in the new state.
        if self._bad:
            if self.rng.random() < loss.p_bad_good:
                self._bad = False
        elif self.rng.random() < loss.p_good_bad:
            self._bad = True
        p = loss.loss_bad if self._bad else loss.loss_good
        return p > 0 and self.rng.random() < p

    def _retransmission_delay(self, size: int) -> float:
        """Stream mode: a chunk is lost if any of its segments is; each loss costs an RTO."""
        if self.config.loss is None:
            return 0.0
        segments = max(1, math.ceil(size / self.config.segment_bytes))
        extra = 0.0
        rto = self.config.tcp_rto_ms / 1000
        for _ in range(MAX_RETRANSMISSIONS):
            if not any(self._lost() for _ in range(segments)):
                break
            self.counters.retransmitted += 1
            extra += rto
            rto *= 2
        return extra

    def _queue_full(self, wait_s: float, wire: int) -> bool:
        cfg = self.config
        if cfg.queue_ms is not None:
            return wait_s * 1000 > cfg.queue_ms + _EPS
        if cfg.queue_bytes is not None:
            assert cfg.rate_kbps is not None  # the backlog is kept as time: allow rounding
            return wait_s * cfg.rate_kbps * 1000 / 8 + wire > cfg.queue_bytes + _EPS
        return False

    def _delay_s(self) -> float:
        cfg = self.config
        if cfg.jitter_ms == 0:
            return cfg.delay_ms / 1000
        if cfg.jitter_distribution == "normal":
            ms = self.rng.gauss(cfg.delay_ms, cfg.jitter_ms)
        else:
            ms = self.rng.uniform(cfg.delay_ms - cfg.jitter_ms, cfg.delay_ms + cfg.jitter_ms)
        return max(0.0, ms) / 1000
