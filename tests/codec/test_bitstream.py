"""Frame payloads and the .ssc container: round trips, truncation, strict rejection."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

from codec.bitstream import (
    CodedAudio,
    dumps,
    layers_in_payload,
    loads,
    pack_frame,
    payload_bytes,
    unpack_frame,
)
from codec.errors import BitstreamError

HOP = 320


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
        coded.model_id, coded.sample_rate, coded.source_rate, coded.samples, coded.denoise)
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
    "blob, message",
    [
        (b"RIFF\x00\x00\x00\x00WAVEfmt ", "magic"),
        (b"", "magic"),
        (b"\x89SSC", "truncated"),
        (b"\x89SSC\x07" + bytes(40), "version 7"),
    ],
)
def test_foreign_files_are_rejected_clearly(blob: bytes, message: str) -> None:
    with pytest.raises(BitstreamError, match=message):
        loads(blob, HOP)


def test_trailing_garbage_is_rejected() -> None:
    data = _example()
    with pytest.raises(BitstreamError):
        loads(data[:-4] + b"\x00" + data[-4:], HOP)
