"""The send path's packet logic as pure code, on a virtual clock: what leaves in which packet,
what is skipped, and the RTT from the feedback's echo."""

from __future__ import annotations

import math

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

from protocol.packetizer import MAX_BACKLOG_S, QUIET_RMS, SEND_TIMES, PacketSizer, Packetizer, Send, Skip
from protocol.packets import SEQ_MODULO, TS_MODULO, Frame, decode_packet, seq_diff
from protocol.ratecontrol import SendPlan

HOP, BITS, MAX_LAYERS = 320, 10, 24
FRAME_S = 0.02
LOUD, SILENT = 0.1, 0.0


def frame(i: int, layers: int = 6) -> Frame:
    """Frame i's codes name it: codes[k] = (i * 7 + k) mod 1024, so a copy is recognisable."""
    return Frame((i * 7 + np.arange(layers, dtype=np.int64)) % (1 << BITS))


def plan(fpp: float = 1, redundant: int = 0, red_layers: int = 2, spacing: int = 1, send_every: int = 1, wire_bps: float = 16_000.0) -> SendPlan:
    return SendPlan(
        layers=6,
        frames_per_packet=fpp,
        redundant_frames=redundant,
        redundant_layers=red_layers,
        wire_bps=wire_bps,
        estimate_bps=wire_bps,
        send_every=send_every,
        redundant_spacing=spacing,
    )


class Clock:
    """Frames pushed every 20 ms; what the transport takes is marked sent at that time."""

    def __init__(self, packetizer: Packetizer) -> None:
        self.p = packetizer
        self.t = 0.0
        self.frames = 0
        self.out: list[Send | Skip] = []
        self.sent_at: dict[int, float] = {}  # seq -> when

    def push(self, plan: SendPlan | None = None, rms: float = LOUD, backlog: int = 0, take: bool = True, layers: int = 6) -> Send | Skip | None:
        out = self.p.push(frame(self.frames, layers), rms, plan, backlog)
        self.frames += 1
        self.t += FRAME_S
        if out is not None:
            self.out.append(out)
        if isinstance(out, Send) and take:
            self.p.sent(out, self.t)
            self.sent_at[out.packet.seq] = self.t
        return out

    def sends(self) -> list[Send]:
        return [o for o in self.out if isinstance(o, Send)]


def first_frame(send: Send) -> int:
    return send.packet.timestamp // HOP


# ---- sequence numbers and timestamps -----------------------------------------------------------
def test_sequence_numbers_count_packets_sent_and_timestamps_count_frames() -> None:
    clock = Clock(Packetizer(HOP, BITS))
    for _ in range(12):
        clock.push(plan(fpp=2))
    sends = clock.sends()
    assert [s.packet.seq for s in sends] == list(range(6))
    assert [s.packet.timestamp for s in sends] == [2 * i * HOP for i in range(6)]
    assert (clock.p.seq, clock.p.frames, clock.p.packets) == (6, 12, 6)


def test_sequence_numbers_wrap_on_the_wire_and_only_the_first_packet_is_a_talkspurt() -> None:
    clock = Clock(Packetizer(HOP, BITS))
    clock.push()
    clock.p.seq = SEQ_MODULO - 2  # 22 minutes on at 50 packets a second
    for _ in range(4):
        clock.push()
    sends = clock.sends()
    wire = [decode_packet(s.data, BITS, MAX_LAYERS) for s in sends[1:]]
    assert [w.seq for w in wire] == [SEQ_MODULO - 2, SEQ_MODULO - 1, 0, 1]
    assert [seq_diff(b.seq, a.seq) for a, b in zip(wire, wire[1:])] == [1, 1, 1]
    assert sends[3].packet.seq == SEQ_MODULO  # the extended number the feedback echoes
    assert clock.p.send_time(SEQ_MODULO) == clock.sent_at[SEQ_MODULO]
    assert [s.packet.talkspurt for s in sends] == [True, False, False, False, False]  # not again at the wrap


def test_timestamps_wrap_on_the_wire() -> None:
    hop = 1 << 30  # four frames span the u32 timestamp
    p = Packetizer(hop, BITS)
    wire = [decode_packet(p.push(frame(i), LOUD, None).data, BITS, MAX_LAYERS) for i in range(6)]  # type: ignore[union-attr]
    assert [w.timestamp for w in wire] == [0, 1 << 30, 2 << 30, 3 << 30, 0, 1 << 30]
    assert all((b.timestamp - a.timestamp) % TS_MODULO == hop for a, b in zip(wire, wire[1:]))


@given(st.integers(0, 3 * SEQ_MODULO), st.integers(0, 3 * (TS_MODULO // HOP)), st.lists(st.sampled_from([1, 1.5, 2, 3, 6]), min_size=1, max_size=40))
def test_wire_fields_are_the_counters_modulo_their_width(seq: int, frames: int, packings: list[float]) -> None:
    p = Packetizer(HOP, BITS)
    p.seq, p.frames = seq, frames  # a call long under way
    sends = []
    for i, fpp in enumerate(packings):
        out = p.push(frame(i), LOUD, plan(fpp=fpp))
        if isinstance(out, Send):
            p.sent(out, i * FRAME_S)
            sends.append(out)
    for n, s in enumerate(sends):
        w = decode_packet(s.data, BITS, MAX_LAYERS)
        assert s.packet.seq == seq + n and w.seq == (seq + n) % SEQ_MODULO
        assert w.timestamp == s.packet.timestamp % TS_MODULO
    for a, b in zip(sends, sends[1:]):  # consecutive: the next packet starts where this one ended
        assert b.packet.timestamp - a.packet.timestamp == len(a.packet.frames) * HOP


# ---- frames per packet ---------------------------------------------------------------------------
@pytest.mark.parametrize(("fpp", "sizes"), [(1, [1] * 6), (2, [2] * 3), (3, [3, 3]), (6, [6]), (1.5, [2, 1, 2, 1]), (2.5, [3, 2, 3, 2])])
def test_frames_per_packet_including_the_half_frame_trial(fpp: float, sizes: list[int]) -> None:
    clock = Clock(Packetizer(HOP, BITS))
    while sum(len(s.packet.frames) for s in clock.sends()) < sum(sizes):
        clock.push(plan(fpp=fpp))
    sends = clock.sends()
    assert [len(s.packet.frames) for s in sends] == sizes
    assert [first_frame(s) for s in sends] == [sum(sizes[:i]) for i in range(len(sizes))]
    # each packet carries its frames, in order
    assert all(np.array_equal(f.codes, frame(first_frame(s) + k).codes) for s in sends for k, f in enumerate(s.packet.frames))


def test_without_a_plan_every_frame_is_a_packet() -> None:
    clock = Clock(Packetizer(HOP, BITS))
    outs = [clock.push(None) for _ in range(5)]
    assert all(isinstance(o, Send) and len(o.packet.frames) == 1 and not o.packet.redundancy for o in outs)


def test_a_packets_size_is_set_by_the_plan_at_its_first_frame() -> None:
    clock = Clock(Packetizer(HOP, BITS))
    assert clock.push(plan(fpp=3)) is None
    assert clock.push(plan(fpp=1)) is None  # the packet begun at 3 frames stays 3
    out = clock.push(plan(fpp=1))
    assert isinstance(out, Send) and len(out.packet.frames) == 3
    assert isinstance(clock.push(plan(fpp=1)), Send)  # the next one follows the new plan


@given(st.lists(st.sampled_from([1, 1.5, 2, 2.5, 3]), min_size=1, max_size=200))
def test_packet_sizer_cuts_a_packing_into_whole_packets_that_average_it(packings: list[float]) -> None:
    sizer = PacketSizer()
    owed = 0.0
    for fpp in packings:
        size = sizer.next_size(fpp)
        assert size in (math.floor(fpp), math.ceil(fpp))
        owed += fpp - size
        assert -0.5 <= owed < 0.5  # never more than half a frame from the packing over time


@given(st.lists(st.tuples(st.sampled_from([1, 1.5, 2, 2.5, 3, 6]), st.integers(1, 3)), min_size=1, max_size=60))
def test_every_frame_leaves_once_in_order(steps: list[tuple[float, int]]) -> None:
    """Whatever the plans (and thinning), each frame is in exactly one packet formed, and the
    packets formed tile the frames with no gap."""
    p = Packetizer(HOP, BITS)
    formed: list[tuple[int, int]] = []  # (first frame, frames)
    for i, (fpp, every) in enumerate(steps):
        out = p.push(frame(i), LOUD, plan(fpp=fpp, send_every=every))
        if isinstance(out, Send):
            p.sent(out, i * FRAME_S)
            formed.append((first_frame(out), len(out.packet.frames)))
        elif isinstance(out, Skip):
            formed.append((p.frames - out.frames, out.frames))
    last = p.flush(plan())
    if last is not None:
        assert isinstance(last, Send)
        formed.append((first_frame(last), len(last.packet.frames)))
    assert [f for f, _ in formed] == [sum(n for _, n in formed[:i]) for i in range(len(formed))]
    assert sum(n for _, n in formed) == len(steps) and not p.pending


# ---- redundancy ----------------------------------------------------------------------------------
def test_redundant_copies_are_the_coarse_layers_of_the_frames_back_from_the_first() -> None:
    clock = Clock(Packetizer(HOP, BITS))
    for _ in range(20):
        clock.push(plan(fpp=2, redundant=3, red_layers=2, spacing=3))
    for s in clock.sends():
        first = first_frame(s)
        backs = [r.back for r in s.packet.redundancy]
        assert backs == [b for b in (1, 4, 7) if b <= first]  # only frames that exist
        for r in s.packet.redundancy:
            assert np.array_equal(r.frame.codes, frame(first - r.back).codes[:2])
        wire = decode_packet(s.data, BITS, MAX_LAYERS)  # and so the receiver reads them
        assert [(r.back, r.frame.layers) for r in wire.redundancy] == [(b, 2) for b in backs]


def test_one_copy_of_the_previous_frame_and_none_without_protection() -> None:
    clock = Clock(Packetizer(HOP, BITS))
    for _ in range(3):
        clock.push(plan(redundant=1, red_layers=4))
    assert [[r.back for r in s.packet.redundancy] for s in clock.sends()] == [[], [1], [1]]
    assert clock.push(plan(redundant=0)).packet.redundancy == ()  # type: ignore[union-attr]
    assert clock.push(None).packet.redundancy == ()  # type: ignore[union-attr]


def test_redundancy_reaches_back_at_most_the_history() -> None:
    p = Packetizer(HOP, BITS, history=16)
    for i in range(40):
        out = p.push(frame(i), LOUD, plan(redundant=3, spacing=10))  # backs 1, 11, 21
        assert isinstance(out, Send)
        p.sent(out, i * FRAME_S)
    assert [r.back for r in out.packet.redundancy] == [1, 11] and len(p.history) == 16


def test_frames_not_sent_still_serve_as_redundancy() -> None:
    clock = Clock(Packetizer(HOP, BITS))
    assert isinstance(clock.push(plan(redundant=2)), Send)
    assert isinstance(clock.push(plan(redundant=2), backlog=10_000), Skip)  # frame 1: skipped
    assert isinstance(clock.push(plan(redundant=2, send_every=2)), Skip)  # frame 2: drained (packet 3)
    out = clock.push(plan(redundant=2))
    assert isinstance(out, Send) and first_frame(out) == 3
    assert [(r.back, np.array_equal(r.frame.codes, frame(3 - r.back).codes[:2])) for r in out.packet.redundancy] == [(1, True), (2, True)]


# ---- thinning and skipping -----------------------------------------------------------------------
def test_draining_sends_every_nth_packet_formed() -> None:
    clock = Clock(Packetizer(HOP, BITS))
    outs = [clock.push(plan(fpp=2, send_every=3)) for _ in range(18)]
    packets = [o for o in outs if o is not None]
    assert [isinstance(o, Send) for o in packets] == [False, False, True] * 3
    assert all(o.reason == "drained" and o.frames == 2 for o in packets if isinstance(o, Skip))
    assert [s.packet.seq for s in clock.sends()] == [0, 1, 2]  # no gap: a packet not sent is no loss
    assert [first_frame(s) for s in clock.sends()] == [4, 10, 16]  # the audio between is gone


def test_the_last_packet_of_a_stream_is_never_drained() -> None:
    p = Packetizer(HOP, BITS)
    assert p.push(frame(0), LOUD, plan(fpp=3, send_every=6)) is None
    last = p.flush(plan(fpp=3, send_every=6))
    assert isinstance(last, Send) and len(last.packet.frames) == 1 and p.flush(plan()) is None


def test_a_packet_is_skipped_while_the_backlog_would_take_longer_than_the_limit_to_leave() -> None:
    at_limit = int(16_000 * MAX_BACKLOG_S / 8)  # 200 bytes at 16 kbit/s: 100 ms
    clock = Clock(Packetizer(HOP, BITS))
    assert isinstance(clock.push(plan(wire_bps=16_000), backlog=at_limit), Send)
    skipped = clock.push(plan(wire_bps=16_000), backlog=at_limit + 1)
    assert isinstance(skipped, Skip) and skipped.reason == "backlog"
    assert isinstance(clock.push(plan(wire_bps=32_000), backlog=at_limit + 1), Send)  # a faster plan drains it in time
    assert isinstance(clock.push(None, backlog=10**6), Send)  # without a plan nothing is skipped
    assert [s.packet.seq for s in clock.sends()] == [0, 1, 2]


def test_a_packet_the_transport_refused_leaves_its_sequence_number_to_the_next() -> None:
    clock = Clock(Packetizer(HOP, BITS))
    refused = clock.push(take=False)
    assert isinstance(refused, Send) and refused.packet.talkspurt
    again = clock.push()
    assert isinstance(again, Send) and again.packet.seq == 0 and again.packet.talkspurt  # still the first sent
    assert clock.push().packet.seq == 1  # type: ignore[union-attr]


def test_the_first_packet_skipped_for_backlog_leaves_the_talkspurt_to_the_next() -> None:
    clock = Clock(Packetizer(HOP, BITS))
    assert isinstance(clock.push(plan(), backlog=10_000), Skip)
    out = clock.push(plan())
    assert isinstance(out, Send) and out.packet.talkspurt and out.packet.seq == 0 and out.packet.timestamp == HOP


# ---- flags ---------------------------------------------------------------------------------------
def test_a_packet_is_quiet_only_when_all_its_frames_are() -> None:
    clock = Clock(Packetizer(HOP, BITS))
    levels = [SILENT, SILENT, SILENT, LOUD, LOUD, SILENT, QUIET_RMS * 0.99, QUIET_RMS]
    for rms in levels:
        clock.push(plan(fpp=2), rms=rms)
    assert [s.packet.quiet for s in clock.sends()] == [True, False, False, False]
    assert [decode_packet(s.data, BITS, MAX_LAYERS).quiet for s in clock.sends()] == [True, False, False, False]


def test_quiet_starts_afresh_after_a_skipped_packet() -> None:
    clock = Clock(Packetizer(HOP, BITS))
    clock.push(plan(), rms=LOUD, backlog=10_000)
    assert clock.push(plan(), rms=SILENT).packet.quiet  # type: ignore[union-attr]


def test_denoise_is_flagged_as_set() -> None:
    p = Packetizer(HOP, BITS, denoise=True)
    out = p.push(frame(0), LOUD, None)
    assert isinstance(out, Send) and decode_packet(out.data, BITS, MAX_LAYERS).denoise
    p.denoise = False
    assert not p.push(frame(1), LOUD, None).packet.denoise  # type: ignore[union-attr]


# ---- a new stream (a reconnecting caller) --------------------------------------------------------
def test_a_new_stream_keeps_the_counters_and_drops_the_packing_state() -> None:
    clock = Clock(Packetizer(HOP, BITS))
    for _ in range(5):
        clock.push(plan(fpp=2, redundant=1))  # packets of frames 0-1, 2-3; frame 4 pending
    assert len(clock.p.pending) == 1
    clock.p.begin()  # the link dropped: frame 4 is lost with it
    assert not clock.p.pending and not clock.p.history
    out = clock.push(plan(redundant=1))
    assert isinstance(out, Send)
    assert (out.packet.seq, first_frame(out), out.packet.talkspurt, out.packet.redundancy) == (2, 5, False, ())


# ---- RTT -----------------------------------------------------------------------------------------
def test_an_echo_maps_to_its_packets_send_time() -> None:
    clock = Clock(Packetizer(HOP, BITS))
    for _ in range(50):
        clock.push()
    now = clock.t + 0.013
    sample = clock.p.on_echo(30, hold_ms=5.0, now=now)
    assert sample == pytest.approx(1000 * (now - clock.sent_at[30]) - 5.0)
    assert clock.p.send_time(30) == clock.sent_at[30]


def test_an_echo_of_nothing_sent_gives_no_sample() -> None:
    clock = Clock(Packetizer(HOP, BITS))
    for _ in range(3):
        clock.push()
    assert clock.p.on_echo(3, 0.0, 10.0) is None  # not sent yet
    assert clock.p.on_echo(SEND_TIMES + 1, 0.0, 10.0) is None  # its slot holds packet 1
    assert clock.p.rtt_ms is None


def test_the_send_time_table_is_bounded_and_forgets_the_oldest() -> None:
    clock = Clock(Packetizer(HOP, BITS, send_times=8))
    for _ in range(20):
        clock.push()
    assert [clock.p.send_time(s) for s in range(20)] == [None] * 12 + [clock.sent_at[s] for s in range(12, 20)]
    assert clock.p.on_echo(11, 0.0, clock.t) is None  # overwritten by 19: not 19's time


def test_implausible_samples_are_refused() -> None:
    clock = Clock(Packetizer(HOP, BITS))
    clock.push()
    sent = clock.sent_at[0]
    assert clock.p.on_echo(0, hold_ms=100.0, now=sent + 0.05) is None  # held longer than the round trip
    assert clock.p.on_echo(0, hold_ms=0.0, now=sent + 61.0) is None  # a minute: someone else's clock
    assert clock.p.rtt_ms is None


def test_samples_are_smoothed_with_an_eighth_gain() -> None:
    clock = Clock(Packetizer(HOP, BITS))
    for _ in range(3):
        clock.push()
    assert clock.p.on_echo(0, 0.0, clock.sent_at[0] + 0.080) == pytest.approx(80.0)
    assert clock.p.rtt_ms == pytest.approx(80.0)
    clock.p.on_echo(1, 0.0, clock.sent_at[1] + 0.160)
    assert clock.p.rtt_ms == pytest.approx(90.0)


@given(st.lists(st.floats(0.001, 0.2), min_size=1, max_size=100), st.data())
def test_any_echo_within_the_table_gives_the_true_round_trip(gaps: list[float], data: st.DataObject) -> None:
    p = Packetizer(HOP, BITS, send_times=32)
    t, sent_at = 0.0, []
    for i, gap in enumerate(gaps):  # packets leave at irregular times
        t += gap
        out = p.push(frame(i), LOUD, None)
        assert isinstance(out, Send)
        p.sent(out, t)
        sent_at.append(t)
    seq = data.draw(st.integers(0, len(gaps) - 1))
    rtt_s, hold_ms = data.draw(st.floats(0.01, 5.0)), data.draw(st.floats(0.0, 100.0))
    now = sent_at[seq] + rtt_s + hold_ms / 1000
    sample = p.on_echo(seq, hold_ms, now)
    if seq >= len(gaps) - 32:
        assert sample == pytest.approx(1000 * rtt_s, abs=1e-6)
    else:
        assert sample is None
