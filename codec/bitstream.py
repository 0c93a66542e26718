"""Codes <-> bytes: one frame's payload, and the `.ssc` file container.

Frame payload: the frame's codes, coarsest layer (stage) first, each `bits` bits
big-endian, packed MSB first and zero-padded to a byte. Cutting a payload to its first m
bytes leaves exactly its first floor(8 m / bits) stages, so a network can shed fine stages
by truncation. With codes of 8 bits or more the padding never holds a whole code, so a
payload's length alone gives its stage count. Narrower codes (4 bits: two stages a byte)
cannot say whether the last nibble is a stage or padding: a payload of L bytes holds
2L - 1 or 2L stages, and the count travels beside it (each media packet and the container
carry every frame's count; `unpack_frame(..., layers=k)`).

Container (little-endian):
    magic b"\\x89SSC"  version u8  flags u8 (bit 0: denoise)
    model_id_len u8  model_id ascii
    sample_rate u32 (the codec's)  source_rate u32 (the input file's)
    samples u64 (at the codec's rate)  frames u32  bits u8
    layer_counts u8 * frames
    payloads (each as above, lengths implied by layer_counts)
    crc32 u32 of everything before it
Parsing is strict: any inconsistency is a BitstreamError naming it.
"""

from __future__ import annotations

import struct
import zlib
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from codec.errors import BitstreamError

MAGIC = b"\x89SSC"
VERSION = 1
FLAG_DENOISE = 0x01
_HEADER_TAIL = struct.Struct("<IIQIB")
MAX_FILE_BYTES = 1 << 31
MAX_SOURCE_RATE = 768_000  # the highest rate an audio file plausibly has; decoding resamples to it


def payload_bytes(layers: int, bits: int) -> int:
    return (layers * bits + 7) // 8


def layers_in_payload(length: int, bits: int) -> int:
    return (8 * length) // bits


def _check_bits(bits: int) -> None:
    if not 1 <= bits <= 16:
        raise BitstreamError(f"codes of {bits} bits are not supported (1..16)")


def pack_frame(codes: np.ndarray, bits: int) -> bytes:
    """One frame's codes [K] (coarse first) -> payload bytes."""
    _check_bits(bits)
    codes = np.asarray(codes, dtype=np.int64)
    if codes.ndim != 1 or codes.size == 0:
        raise BitstreamError("a frame needs at least one layer of codes")
    if codes.min() < 0 or codes.max() >= (1 << bits):
        raise BitstreamError(f"code out of range for {bits}-bit codebooks")
    shifts = np.arange(bits - 1, -1, -1)
    return np.packbits(((codes[:, None] >> shifts) & 1).astype(np.uint8).reshape(-1)).tobytes()


def unpack_frame(payload: bytes, bits: int, max_layers: int, layers: int | None = None) -> np.ndarray:
    """Payload bytes -> codes [K]: K = `layers`, which must fill the payload to its last byte,
    or without it all the stages the payload can hold (see the module docstring)."""
    _check_bits(bits)
    if layers is None:
        layers = layers_in_payload(len(payload), bits)
    elif payload_bytes(layers, bits) != len(payload):
        raise BitstreamError(f"{layers} stages of {bits} bits take {payload_bytes(layers, bits)} bytes, not {len(payload)}")
    if layers == 0:
        raise BitstreamError(f"frame payload of {len(payload)} bytes holds no whole code")
    if layers > max_layers:
        raise BitstreamError(f"frame payload holds {layers} layers, the model has {max_layers}")
    flat = np.unpackbits(np.frombuffer(payload, dtype=np.uint8))[: layers * bits]
    return flat.reshape(layers, bits).astype(np.int64) @ (1 << np.arange(bits - 1, -1, -1))


@dataclass
class CodedAudio:
    """A whole encoded signal: codes [frames, max layers] and each frame's layer count."""

    model_id: str
    sample_rate: int
    source_rate: int
    samples: int
    bits: int
    layer_counts: np.ndarray  # [frames] uint8, 1..codes.shape[1]
    codes: np.ndarray  # [frames, K] int64; entries past a frame's count are ignored
    denoise: bool = False

    @property
    def frames(self) -> int:
        return int(self.layer_counts.size)


def dumps(coded: CodedAudio) -> bytes:
    model_id = coded.model_id.encode("ascii")
    if len(model_id) > 255:
        raise BitstreamError("model id longer than 255 bytes")
    counts = np.asarray(coded.layer_counts, dtype=np.int64)
    if counts.size and (counts.min() < 1 or counts.max() > min(255, coded.codes.shape[1])):
        raise BitstreamError("layer counts must be in 1..the number of coded layers")
    parts = [
        MAGIC,
        bytes([VERSION, FLAG_DENOISE if coded.denoise else 0, len(model_id)]),
        model_id,
        _HEADER_TAIL.pack(coded.sample_rate, coded.source_rate, coded.samples, coded.frames, coded.bits),
        counts.astype(np.uint8).tobytes(),
    ]
    parts += [pack_frame(coded.codes[t, : counts[t]], coded.bits) for t in range(coded.frames)]
    body = b"".join(parts)
    return body + struct.pack("<I", zlib.crc32(body))


def loads(data: bytes, hop: int) -> CodedAudio:
    """Parse a container strictly; `hop` is the codec's samples per frame."""
    if len(data) < len(MAGIC) or data[:4] != MAGIC:
        raise BitstreamError("not an .ssc file (bad magic)")
    if len(data) < 4 + 3 + _HEADER_TAIL.size + 4:
        raise BitstreamError("truncated .ssc header")
    body, (crc,) = data[:-4], struct.unpack("<I", data[-4:])
    version, flags, id_len = data[4], data[5], data[6]
    if version != VERSION:
        raise BitstreamError(f".ssc version {version} is not supported (this reader knows {VERSION})")
    if flags & ~FLAG_DENOISE:
        raise BitstreamError(f"unknown .ssc flags 0x{flags:02x}")
    pos = 7
    if len(body) < pos + id_len + _HEADER_TAIL.size:
        raise BitstreamError("truncated .ssc header")
    try:
        model_id = body[pos : pos + id_len].decode("ascii")
    except UnicodeDecodeError:
        raise BitstreamError("corrupt .ssc header (model id)") from None
    pos += id_len
    sample_rate, source_rate, samples, frames, bits = _HEADER_TAIL.unpack_from(body, pos)
    pos += _HEADER_TAIL.size
    if not 1 <= bits <= 16 or sample_rate == 0 or not 1 <= source_rate <= MAX_SOURCE_RATE:
        raise BitstreamError("corrupt .ssc header (rates or code width)")
    if frames != -(-samples // hop):
        raise BitstreamError(f"corrupt .ssc header: {samples} samples need {-(-samples // hop)} frames, not {frames}")
    if len(body) < pos + frames:
        raise BitstreamError("truncated .ssc file (layer counts)")
    counts = np.frombuffer(body, dtype=np.uint8, count=frames, offset=pos).astype(np.int64)
    pos += frames
    if frames and counts.min() < 1:
        raise BitstreamError("corrupt .ssc file: a frame with zero layers")
    sizes = (counts * bits + 7) // 8
    if len(body) - pos != int(sizes.sum()):
        what = "truncated" if len(body) - pos < int(sizes.sum()) else "corrupt"
        raise BitstreamError(f"{what} .ssc file: payload size does not match the layer counts")
    if zlib.crc32(body) != crc:
        raise BitstreamError("corrupt .ssc file (checksum mismatch)")
    max_layers = int(counts.max()) if frames else 1
    codes = np.zeros((frames, max_layers), dtype=np.int64)
    for t, size in enumerate(sizes):
        frame = unpack_frame(body[pos : pos + size], bits, max_layers, int(counts[t]))
        codes[t, : frame.size] = frame
        pos += size
    return CodedAudio(model_id, sample_rate, source_rate, samples, bits, counts.astype(np.uint8), codes, bool(flags & FLAG_DENOISE))


def peek_model_id(path: str | Path) -> str | None:
    """The model id an .ssc file names, read from its header alone (None if it has none)."""
    try:
        with Path(path).open("rb") as f:
            head = f.read(7 + 255)
    except OSError:
        return None
    if len(head) < 7 or head[:4] != MAGIC or len(head) < 7 + head[6]:
        return None
    try:
        return head[7 : 7 + head[6]].decode("ascii")
    except UnicodeDecodeError:
        return None


def read_file(path: str | Path, hop: int) -> CodedAudio:
    path = Path(path)
    if not path.is_file():
        raise BitstreamError(f"{path}: no such file")
    if path.stat().st_size > MAX_FILE_BYTES:
        raise BitstreamError(f"{path}: larger than any .ssc file this reader accepts")
    try:
        return loads(path.read_bytes(), hop)
    except BitstreamError as exc:
        raise BitstreamError(f"{path}: {exc}") from None
