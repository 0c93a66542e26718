"""The send path's packet logic (sans-I/O): encoded frames and the current send plan in,
packets or a skip decision out.

`Packetizer.push` takes one frame's codes, its input level and the rate policy's `SendPlan`
(None without a policy: one frame a packet, no redundancy, nothing skipped) and says what
leaves when a packet fills:
- `Send`: the packet and its bytes. The caller hands them to the transport and, if it took
  them, calls `sent` with the time: only then does the sequence number advance (a packet
  never sent is no loss on the network) and its send time enter the RTT table;
- `Skip("drained")`: every `send_every`-th packet is sent while the policy drains a queue
  that even its smallest plan would feed;
- `Skip("backlog")`: our own unsent bytes would take longer than MAX_BACKLOG_S to leave at the
  plan's wire rate, so the packet would arrive late: the receiver conceals it instead.

Each packet takes `PacketSizer`'s share of frames (a fractional packing, a leap's trial,
gives mixed packets) and, when the plan protects, coarse copies of earlier frames `back`
frames before its first one. The first packet sent is flagged talkspurt; a packet whose
frames are all below QUIET_RMS is flagged quiet (the receiver may drop it to win delay back).
Sequence numbers and timestamps count on without bound here; the packet format wraps them.

`on_echo` turns a feedback report (the highest sequence number received, held `hold_ms`
since) into an RTT sample from the table of recent send times. Time is always passed in.
"""

from __future__ import annotations

import math
from collections import deque
from dataclasses import dataclass
from typing import Literal

from protocol.packets import Frame, MediaPacket, RedundantFrame, encode_packet
from protocol.ratecontrol import SendPlan

QUIET_RMS = 10 ** (-45 / 20)  # frames below -45 dBFS are marked quiet: the receiver may drop them
SEND_TIMES = 1024  # sequence numbers remembered for RTT (20 s at 50 packets a second)
HISTORY = 16  # frames kept for redundancy (the deepest copy lies BURST_HORIZON_FRAMES = 8 back)
MAX_BACKLOG_S = 0.1  # a packet is skipped while our unsent bytes would take longer than this to leave
MAX_RTT_MS = 60_000.0  # a sample outside 0..this is refused (a confused or hostile report)
RTT_GAIN = 1 / 8  # RFC 6298's smoothing


class PacketSizer:
    """Frames in each next packet so that packets average `frames_per_packet`:
    whole packings give whole packets, 1.5 gives 2, 1, 2, 1, ..."""

    def __init__(self) -> None:
        self._owed = 0.0  # frames the packets so far fell short of the packing (within +/- 0.5)

    def next_size(self, frames_per_packet: float) -> int:
        self._owed += frames_per_packet
        size = max(1, math.floor(self._owed + 0.5))
        self._owed -= size
        return size


@dataclass(frozen=True)
class Send:
    """A packet to hand to the transport (then `Packetizer.sent`, if it took it)."""

    packet: MediaPacket
    data: bytes


@dataclass(frozen=True)
class Skip:
    """A packet formed and not sent (its frames still serve as redundancy for later ones)."""

    reason: Literal["drained", "backlog"]
    frames: int


class Packetizer:
    """Frames in, packets out, for one sender. It outlives a stream (a reconnecting caller
    keeps its sequence numbers, timestamps and RTT table): `begin` starts the next stream."""

    def __init__(
        self, hop: int, bits_per_code: int, denoise: bool = False, send_times: int = SEND_TIMES, history: int = HISTORY, max_backlog_s: float = MAX_BACKLOG_S
    ) -> None:
        self.hop = hop  # samples a frame
        self.bits_per_code = bits_per_code
        self.denoise = denoise  # the packets' flag (the encoder was told)
        self.max_backlog_s = max_backlog_s
        self.seq = 0  # packets sent: the next packet's sequence number
        self.frames = 0  # frames pushed: the next frame's index
        self.packets = 0  # packets formed by `push` (sent, skipped or drained)
        self.rtt_ms: float | None = None  # smoothed
        self._send_times = [math.nan] * send_times  # by sequence number modulo the table's size
        self._send_seqs = [-1] * send_times  # which sequence number each slot holds
        self._history_len = history
        self.begin()

    def begin(self) -> None:
        """A new stream: no frames pending, no history, a fresh packing."""
        self.pending: list[Frame] = []  # frames waiting for their packet
        self.history: deque[Frame] = deque(maxlen=self._history_len)  # the last frames formed, newest last
        self._sizer = PacketSizer()
        self._packet_frames = 1
        self._quiet = True

    # ---- frames in, packets out ------------------------------------------------------------------
    def push(self, frame: Frame, rms: float, plan: SendPlan | None, backlog_bytes: int = 0) -> Send | Skip | None:
        """One frame (`rms`: its level as sent); what leaves if it fills a packet, else None.
        `backlog_bytes`: what the transport holds unsent now."""
        self.pending.append(frame)
        self.frames += 1
        self._quiet = self._quiet and rms < QUIET_RMS
        if len(self.pending) == 1:  # this frame starts a packet: how many frames it takes
            self._packet_frames = self._sizer.next_size(plan.frames_per_packet) if plan else 1
        if len(self.pending) < self._packet_frames:
            return None
        self.packets += 1
        if plan is None or self.packets % plan.send_every == 0:
            out: Send | Skip = self._packet(plan, backlog_bytes)
        else:
            out = Skip("drained", len(self.pending))
        self.history.extend(self.pending)
        self.pending, self._quiet = [], True
        return out

    def flush(self, plan: SendPlan | None, backlog_bytes: int = 0) -> Send | Skip | None:
        """The stream ended: the frames still pending leave in a packet of their own
        (never drained: it is the last)."""
        if not self.pending:
            return None
        out = self._packet(plan, backlog_bytes)
        self.pending, self._quiet = [], True
        return out

    def _packet(self, plan: SendPlan | None, backlog_bytes: int) -> Send | Skip:
        frames = self.pending
        redundancy: tuple[RedundantFrame, ...] = ()
        if plan is not None and plan.redundant_frames:
            redundancy = tuple(
                RedundantFrame(back=b, frame=Frame(self.history[-b].codes[: plan.redundant_layers])) for b in plan.redundant_backs if b <= len(self.history)
            )
        packet = MediaPacket(
            seq=self.seq,
            timestamp=(self.frames - len(frames)) * self.hop,
            frames=tuple(frames),
            denoise=self.denoise,
            talkspurt=self.seq == 0,
            quiet=self._quiet,
            redundancy=redundancy,
        )
        data = encode_packet(packet, self.bits_per_code)
        if plan is not None and backlog_bytes and 8 * backlog_bytes > plan.wire_bps * self.max_backlog_s:
            return Skip("backlog", len(frames))
        return Send(packet, data)

    def sent(self, send: Send, now: float) -> None:
        """The transport took `send`'s packet at `now`: the next packet takes the next number."""
        seq = send.packet.seq
        slot = seq % len(self._send_times)
        self._send_times[slot], self._send_seqs[slot] = now, seq
        self.seq = seq + 1

    # ---- RTT -------------------------------------------------------------------------------------
    def send_time(self, seq: int) -> float | None:
        """When packet `seq` (extended) left, if it is among the last SEND_TIMES sent."""
        slot = seq % len(self._send_times)
        return self._send_times[slot] if self._send_seqs[slot] == seq else None

    def on_echo(self, highest_seq: int, hold_ms: float, now: float) -> float | None:
        """A feedback report's highest sequence number, held `hold_ms` before the report left,
        arrived at `now`: the RTT sample in ms (also folded into `rtt_ms`), or None."""
        sent_at = self.send_time(highest_seq)
        if sent_at is None:
            return None
        rtt = 1000 * (now - sent_at) - hold_ms
        if not 0 <= rtt < MAX_RTT_MS:
            return None
        old = self.rtt_ms
        self.rtt_ms = rtt if old is None else old + (rtt - old) * RTT_GAIN
        return rtt
