"""Media packets: round trips, strict parsing, fuzzing, wrap-around arithmetic."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from protocol.packets import MAX_PACKET_BYTES, Frame, MediaPacket, PacketError, RedundantFrame, decode_packet, encode_packet, seq_diff

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


@given(
    main=st.lists(st.lists(st.integers(0, 15), min_size=1, max_size=46), min_size=1, max_size=6),
    red=st.lists(st.lists(st.integers(0, 15), min_size=1, max_size=46), max_size=4),
)
def test_four_bit_stages_round_trip_with_odd_counts(main: list[list[int]], red: list[list[int]]) -> None:
    """The default model's 4-bit stages: the header's counts say which nibble is padding."""
    packet = MediaPacket(
        seq=1,
        timestamp=320,
        frames=tuple(Frame(np.array(c, np.int64)) for c in main),
        redundancy=tuple(RedundantFrame(i + 1, Frame(np.array(c, np.int64))) for i, c in enumerate(red)),
    )
    data = encode_packet(packet, 4)
    assert _same(decode_packet(data, 4, 46), packet)
    with pytest.raises(PacketError):
        decode_packet(data + b"\x00", 4, 46)


# The shipped layouts: the default model's 4-bit stages (46 of them), and 10-bit stages.
LAYOUTS = [(4, 46), (10, 24), (10, 36)]


@st.composite
def layout_packets(draw) -> tuple[bytes, int, int]:
    """A well-formed packet at one of the real layouts, up to 6 frames and 8 redundant copies."""
    bits, max_layers = draw(st.sampled_from(LAYOUTS))
    rng = np.random.default_rng(draw(st.integers(0, 2**32 - 1)))  # the codes' values matter little: drawn fast

    def frame(top: int) -> Frame:
        return Frame(rng.integers(0, 1 << bits, draw(st.integers(1, top))).astype(np.int64))

    main = [frame(max_layers) for _ in range(draw(st.integers(1, 6)))]
    red = [RedundantFrame(draw(st.integers(1, 255)), frame(8)) for _ in range(draw(st.integers(0, 8)))]
    packet = MediaPacket(
        seq=draw(st.integers(0, 2**16 - 1)),
        timestamp=draw(st.integers(0, 2**32 - 1)),
        frames=tuple(main),
        quiet=draw(st.booleans()),
        talkspurt=draw(st.booleans()),
        redundancy=tuple(red),
    )
    try:
        return encode_packet(packet, bits), bits, max_layers
    except PacketError:  # over MAX_PACKET_BYTES: keep the first frame only
        return encode_packet(MediaPacket(seq=1, timestamp=0, frames=tuple(main[:1])), bits), bits, max_layers


@settings(max_examples=1500)
@given(layout_packets(), st.data())
def test_mutated_packets_at_the_real_layouts_raise_only_packet_errors(sample: tuple[bytes, int, int], data) -> None:
    """Bytes flipped, inserted, cut or appended anywhere in a real packet (header, layer counts,
    nibble payloads, redundancy block): it parses or raises PacketError, nothing else."""
    raw, bits, max_layers = sample
    assert decode_packet(raw, bits, max_layers).frames
    mutated = bytearray(raw)
    for _ in range(data.draw(st.integers(1, 4))):
        op = data.draw(st.sampled_from(["flip", "insert", "delete", "append"]))
        at = data.draw(st.integers(0, max(0, len(mutated) - 1)))
        if op == "flip" and mutated:
            mutated[at] = data.draw(st.integers(0, 255))
        elif op == "insert":
            mutated.insert(at, data.draw(st.integers(0, 255)))
        elif op == "delete" and mutated:
            del mutated[at]
        else:
            mutated += data.draw(st.binary(min_size=1, max_size=MAX_PACKET_BYTES))
    try:
        decode_packet(bytes(mutated), bits, max_layers)
    except PacketError:
        pass


@settings(max_examples=1500)
@given(st.sampled_from(LAYOUTS), st.integers(0, 15), st.integers(0, 6), st.binary(max_size=MAX_PACKET_BYTES + 8))
def test_fuzzed_bodies_behind_a_valid_header_raise_only_packet_errors(layout: tuple[int, int], flags: int, n: int, body: bytes) -> None:
    """Random bytes behind a header of the right version (any flags, 0-6 frames) reach the
    layer counts, payloads and redundancy block that random packets rarely get to."""
    bits, max_layers = layout
    try:
        decode_packet(bytes([0x10 | flags, 0, 1, 0, 0, 1, 64, n]) + body, bits, max_layers)
    except PacketError:
        pass
