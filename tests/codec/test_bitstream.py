"""Frame payloads and the .ssc container: round trips, truncation, strict rejection."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from codec.bitstream import CodedAudio, dumps, layers_in_payload, loads, pack_frame, payload_bytes, unpack_frame
from codec.errors import BitstreamError

HOP = 320
STAGES = 80  # the default model's 4-bit stages: Lyra's 46 and the 34 fitted after them


@given(bits=st.integers(8, 16), data=st.data())
def test_frame_round_trip_and_truncation(bits: int, data) -> None:
    codes = np.array(data.draw(st.lists(st.integers(0, (1 << bits) - 1), min_size=1, max_size=40)))
    payload = pack_frame(codes, bits)
    assert len(payload) == payload_bytes(codes.size, bits)
    assert layers_in_payload(len(payload), bits) == codes.size
    assert np.array_equal(unpack_frame(payload, bits, 64), codes)
    keep = data.draw(st.integers(1, codes.size))
    truncated = payload[: payload_bytes(keep, bits)]
    assert np.array_equal(unpack_frame(truncated, bits, 64), codes[:keep])


@given(data=st.data())
def test_four_bit_stages_pack_two_a_byte_coarse_first_with_the_count_beside(data) -> None:
    codes = np.array(data.draw(st.lists(st.integers(0, 15), min_size=1, max_size=STAGES)))
    payload = pack_frame(codes, 4)
    assert len(payload) == (codes.size + 1) // 2
    assert payload[0] >> 4 == codes[0]  # the coarsest stage leads
    assert np.array_equal(unpack_frame(payload, 4, STAGES, codes.size), codes)
    # Cut at any byte boundary: the first 2 m stages remain, and decode without a count.
    m = data.draw(st.integers(1, len(payload)))
    kept = min(2 * m, codes.size)
    assert np.array_equal(unpack_frame(payload[:m], 4, STAGES + 1)[:kept], codes[:kept])
    if codes.size % 2:
        assert layers_in_payload(len(payload), 4) == codes.size + 1  # the pad nibble: hence the count
    with pytest.raises(BitstreamError, match="take"):
        unpack_frame(payload + b"\x00", 4, 64, codes.size)


def test_every_four_bit_stage_count_round_trips_in_frames_and_containers() -> None:
    rng = np.random.default_rng(0)
    codes = rng.integers(0, 16, (STAGES, STAGES))
    counts = np.arange(1, STAGES + 1)
    for n in counts:
        assert np.array_equal(unpack_frame(pack_frame(codes[n - 1, :n], 4), 4, STAGES, int(n)), codes[n - 1, :n])
    back = loads(dumps(CodedAudio("soundstream16k-lyra2x-0123456789", 16_000, 16_000, STAGES * HOP, 4, counts.astype(np.uint8), codes)), HOP)
    assert np.array_equal(back.layer_counts, counts)
    assert all(np.array_equal(back.codes[t, :n], codes[t, :n]) for t, n in enumerate(counts))
    with pytest.raises(BitstreamError, match="the model has"):
        unpack_frame(pack_frame(codes[-1], 4), 4, STAGES - 1, STAGES)


@given(counts=st.lists(st.integers(1, STAGES), min_size=1, max_size=20), data=st.data())
def test_container_round_trips_odd_four_bit_stage_counts(counts: list[int], data) -> None:
    frames = len(counts)
    codes = np.zeros((frames, STAGES), np.int64)
    for t, n in enumerate(counts):
        codes[t, :n] = data.draw(st.lists(st.integers(0, 15), min_size=n, max_size=n))
    coded = CodedAudio("soundstream16k-lyra2-0123456789", 16_000, 16_000, frames * HOP, 4, np.array(counts, np.uint8), codes)
    back = loads(dumps(coded), HOP)
    assert np.array_equal(back.layer_counts, coded.layer_counts)
    for t, n in enumerate(counts):
        assert np.array_equal(back.codes[t, :n], codes[t, :n])


def test_container_refuses_an_implausible_source_rate() -> None:
    coded = CodedAudio("m", 16_000, 2_000_000, HOP, 10, np.array([1], np.uint8), np.zeros((1, 1), np.int64))
    with pytest.raises(BitstreamError, match="rates"):
        loads(dumps(coded), HOP)


def test_frame_rejects_empty_and_too_many_layers() -> None:
    with pytest.raises(BitstreamError, match="no whole code"):
        unpack_frame(b"\x01", 10, 36)
    with pytest.raises(BitstreamError, match="36"):
        unpack_frame(bytes(60), 10, 36)
    with pytest.raises(BitstreamError, match="out of range"):
        pack_frame(np.array([1024]), 10)


@st.composite
def coded_audio(draw) -> CodedAudio:
    samples = draw(st.integers(0, HOP * 30))
    frames = -(-samples // HOP)
    max_layers = draw(st.integers(1, 36))
    counts = np.array(draw(st.lists(st.integers(1, max_layers), min_size=frames, max_size=frames)), dtype=np.uint8)
    codes = np.array(draw(st.lists(st.integers(0, 1023), min_size=frames * max_layers, max_size=frames * max_layers)), dtype=np.int64)
    codes = codes.reshape(frames, max_layers)
    for t, n in enumerate(counts):
        codes[t, n:] = 0
    model_id = draw(st.text(alphabet="abcdefghij0123456789-", min_size=1, max_size=40))
    return CodedAudio(model_id, 16_000, draw(st.sampled_from([8000, 16000, 44100, 48000])), samples, 10, counts, codes, draw(st.booleans()))


@given(coded=coded_audio())
def test_container_round_trip(coded: CodedAudio) -> None:
    back = loads(dumps(coded), HOP)
    assert (back.model_id, back.sample_rate, back.source_rate, back.samples, back.denoise) == (
        coded.model_id,
        coded.sample_rate,
        coded.source_rate,
        coded.samples,
        coded.denoise,
    )
    assert np.array_equal(back.layer_counts, coded.layer_counts)
    for t, n in enumerate(coded.layer_counts):
        assert np.array_equal(back.codes[t, :n], coded.codes[t, :n])


def _example() -> bytes:
    counts = np.array([3, 5, 1, 5], dtype=np.uint8)
    codes = np.arange(20).reshape(4, 5)
    return dumps(CodedAudio("ssc16k-test", 16000, 44100, 4 * HOP - 7, 10, counts, codes))


@given(cut=st.integers(0, 60))
def test_truncated_files_are_rejected(cut: int) -> None:
    data = _example()
    with pytest.raises(BitstreamError):
        loads(data[: max(0, len(data) - 1 - cut)], HOP)


@given(position=st.integers(0, 200), flip=st.integers(1, 255))
def test_any_corrupted_byte_is_rejected(position: int, flip: int) -> None:
    data = bytearray(_example())
    data[position % len(data)] ^= flip
    with pytest.raises(BitstreamError):
        loads(bytes(data), HOP)


@pytest.mark.parametrize(
    "blob, message", [(b"RIFF\x00\x00\x00\x00WAVEfmt ", "magic"), (b"", "magic"), (b"\x89SSC", "truncated"), (b"\x89SSC\x07" + bytes(40), "version 7")]
)
def test_foreign_files_are_rejected_clearly(blob: bytes, message: str) -> None:
    with pytest.raises(BitstreamError, match=message):
        loads(blob, HOP)


def test_trailing_garbage_is_rejected() -> None:
    data = _example()
    with pytest.raises(BitstreamError):
        loads(data[:-4] + b"\x00" + data[-4:], HOP)


def _four_bit_example(counts: list[int]) -> bytes:
    codes = np.zeros((len(counts), 46), np.int64)
    for t, n in enumerate(counts):
        codes[t, :n] = (np.arange(n) * 7 + t) % 16
    return dumps(CodedAudio("soundstream16k-lyra2-0123456789", 16_000, 16_000, len(counts) * HOP, 4, np.array(counts, np.uint8), codes))


@settings(max_examples=1000)
@given(counts=st.lists(st.integers(1, 46), min_size=1, max_size=12), data=st.data())
def test_mutated_four_bit_containers_raise_only_bitstream_errors(counts: list[int], data) -> None:
    """The shipped model's layout (4-bit stages, odd counts): bytes flipped, inserted, cut or
    appended anywhere load or raise BitstreamError, never another exception."""
    raw = bytearray(_four_bit_example(counts))
    for _ in range(data.draw(st.integers(1, 4))):
        at = data.draw(st.integers(0, len(raw) - 1)) if raw else 0
        op = data.draw(st.sampled_from(["flip", "insert", "cut", "append"]))
        if op == "flip" and raw:
            raw[at] = data.draw(st.integers(0, 255))
        elif op == "insert":
            raw[at:at] = data.draw(st.binary(min_size=1, max_size=8))
        elif op == "cut":
            del raw[at:]
        else:
            raw += data.draw(st.binary(min_size=1, max_size=64))
    try:
        loads(bytes(raw), HOP)
    except BitstreamError:
        pass


@settings(max_examples=1500)
@given(version=st.integers(0, 255), body=st.binary(max_size=200))
def test_fuzzed_bodies_behind_the_magic_raise_only_bitstream_errors(version: int, body: bytes) -> None:
    try:
        loads(b"\x89SSC" + bytes([version]) + body, HOP)
    except BitstreamError:
        pass
