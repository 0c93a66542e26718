"""Media packets: round trips, strict parsing, fuzzing, wrap-around arithmetic."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from protocol.packets import (
    MAX_PACKET_BYTES,
    Frame,
    MediaPacket,
    PacketError,
    RedundantFrame,
    decode_packet,
    encode_packet,
    seq_diff,
)

BITS, MAX_LAYERS = 10, 24


def frames(max_count: int) -> st.SearchStrategy:
    frame = st.lists(st.integers(0, 1023), min_size=1, max_size=MAX_LAYERS).map(lambda c: Frame(np.array(c, dtype=np.int64)))
    return st.lists(frame, min_size=1, max_size=max_count)


@st.composite
def packets(draw) -> MediaPacket:
    main = draw(frames(6))
    red = draw(st.lists(st.tuples(st.integers(1, 255), frames(1)), max_size=3))
    return MediaPacket(
        seq=draw(st.integers(0, 2**16 - 1)),
        timestamp=draw(st.integers(0, 2**32 - 1)),
        frames=tuple(main),
        denoise=draw(st.booleans()),
        talkspurt=draw(st.booleans()),
        quiet=draw(st.booleans()),
        redundancy=tuple(RedundantFrame(b, f[0]) for b, f in red),
    )


def _same(a: MediaPacket, b: MediaPacket) -> bool:
    def codes(fs):
        return [f.codes.tolist() for f in fs]

    return (
        (a.seq, a.timestamp, a.denoise, a.talkspurt, a.quiet) == (b.seq, b.timestamp, b.denoise, b.talkspurt, b.quiet)
        and codes(a.frames) == codes(b.frames)
        and [r.back for r in a.redundancy] == [r.back for r in b.redundancy]
        and codes(r.frame for r in a.redundancy) == codes(r.frame for r in b.redundancy)
    )


@given(packets())
def test_round_trip(packet: MediaPacket) -> None:
    data = encode_packet(packet, BITS)
    assert len(data) <= MAX_PACKET_BYTES
    assert _same(decode_packet(data, BITS, MAX_LAYERS), packet)


@settings(max_examples=10_000)
@given(st.binary(max_size=300))
def test_fuzzed_bytes_raise_only_packet_errors(data: bytes) -> None:
    try:
        decode_packet(data, BITS, MAX_LAYERS)
    except PacketError:
        pass


@settings(max_examples=2000)
@given(packets(), st.data())
def test_mutated_packets_raise_only_packet_errors(packet: MediaPacket, data) -> None:
    raw = bytearray(encode_packet(packet, BITS))
    for _ in range(data.draw(st.integers(1, 4))):
        raw[data.draw(st.integers(0, len(raw) - 1))] = data.draw(st.integers(0, 255))
    cut = data.draw(st.integers(0, len(raw)))
    try:
        decode_packet(bytes(raw[:cut]), BITS, MAX_LAYERS)
    except PacketError:
        pass


def test_rejections_name_the_problem() -> None:
    ok = encode_packet(MediaPacket(1, 320, (Frame(np.arange(12)),)), BITS)
    with pytest.raises(PacketError, match="version"):
        decode_packet(bytes([0x20]) + ok[1:], BITS, MAX_LAYERS)
    with pytest.raises(PacketError, match="trailing"):
        decode_packet(ok + b"\x00", BITS, MAX_LAYERS)
    with pytest.raises(PacketError, match="truncated"):
        decode_packet(ok[:-1], BITS, MAX_LAYERS)
    with pytest.raises(PacketError, match="exceeds"):
        decode_packet(bytes(MAX_PACKET_BYTES + 1), BITS, MAX_LAYERS)
    with pytest.raises(PacketError, match="layer count"):
        decode_packet(ok, BITS, 6)


def test_sequence_arithmetic_wraps() -> None:
    assert seq_diff(0, 65535) == 1
    assert seq_diff(65535, 0) == -1
    assert seq_diff(100, 90) == 10
    assert seq_diff(5, 2**31, modulo=2**32) == -(2**31) + 5
