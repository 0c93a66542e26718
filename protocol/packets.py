"""Media packets: one or more frames of RVQ codes, plus an optional redundancy block.

Layout (big-endian, network order):

    byte 0      version (high 4 bits, = 1) | flags (low 4 bits)
    bytes 1-2   sequence number (u16, wraps)
    bytes 3-6   timestamp of the first frame, in samples (u32, wraps)
    byte 7      frame count n (1..MAX_FRAMES)
    n bytes     layer count of each frame (1..max_layers)
    payloads    each frame's codes (codec.bitstream frame payload; length from its layer count)
    if FLAG_REDUNDANCY:
      byte      redundant frame count r (1..MAX_REDUNDANT)
      r x 2 B   frames back from the first frame (u8, >= 1) and layer count (u8)
      payloads  the redundant frames' (coarse) codes

Frames in one packet are consecutive: frame i has timestamp + i * hop. Parsing is strict:
every length must add up exactly, or the packet is refused with a PacketError.
"""

from __future__ import annotations

import struct
from dataclasses import dataclass, field

import numpy as np

from codec.bitstream import pack_frame, payload_bytes, unpack_frame
from codec.errors import BitstreamError

VERSION = 1
FLAG_DENOISE = 0x1
FLAG_REDUNDANCY = 0x2
FLAG_TALKSPURT = 0x4  # first packet after silence or a restart: the receiver may reset its decoder
FLAG_QUIET = 0x8  # every frame of the packet is below the sender's voice threshold
_KNOWN_FLAGS = FLAG_DENOISE | FLAG_REDUNDANCY | FLAG_TALKSPURT | FLAG_QUIET

MAX_FRAMES = 6  # 120 ms of audio in one packet
MAX_REDUNDANT = 8  # earlier frames' coarse copies in one packet (dense cover of a 160 ms burst)
MAX_PACKET_BYTES = 1100  # one SCTP chunk on a WebRTC data channel
SEQ_MODULO = 1 << 16
TS_MODULO = 1 << 32

_HEADER = struct.Struct(">BHIB")
HEADER_BYTES = _HEADER.size  # before the layer counts: what every packet pays whatever it carries
# What the network adds to each packet on the wire (what rate control pays and the cap counts);
# a transport reports its own as `overhead_bytes`.
OVERHEAD_WEBRTC = 90  # IP, UDP, DTLS and SCTP headers on a data channel
OVERHEAD_WEBSOCKET = 50  # TCP/IP headers and websocket framing


class PacketError(ValueError):
    """A media packet that is malformed, truncated, oversized or from another version."""


@dataclass(frozen=True)
class Frame:
    """One frame's codes, coarse layer first."""

    codes: np.ndarray  # [layers] int64

    @property
    def layers(self) -> int:
        return int(self.codes.size)


@dataclass(frozen=True)
class RedundantFrame:
    back: int  # how many frames before the packet's first frame
    frame: Frame


@dataclass(frozen=True)
class MediaPacket:
    seq: int
    timestamp: int
    frames: tuple[Frame, ...]
    denoise: bool = False
    talkspurt: bool = False
    quiet: bool = False  # the receiver may drop these frames to shorten its delay
    redundancy: tuple[RedundantFrame, ...] = field(default=())


def encode_packet(packet: MediaPacket, bits: int) -> bytes:
    if not 1 <= len(packet.frames) <= MAX_FRAMES:
        raise PacketError(f"a packet carries 1..{MAX_FRAMES} frames, not {len(packet.frames)}")
    if len(packet.redundancy) > MAX_REDUNDANT:
        raise PacketError(f"at most {MAX_REDUNDANT} redundant frames")
    flags = (FLAG_DENOISE if packet.denoise else 0) | (FLAG_TALKSPURT if packet.talkspurt else 0) | (FLAG_QUIET if packet.quiet else 0)
    if packet.redundancy:
        flags |= FLAG_REDUNDANCY
    parts = [
        _HEADER.pack((VERSION << 4) | flags, packet.seq % SEQ_MODULO, packet.timestamp % TS_MODULO, len(packet.frames)),
        bytes(f.layers for f in packet.frames),
    ]
    try:
        parts += [pack_frame(f.codes, bits) for f in packet.frames]
        if packet.redundancy:
            parts.append(bytes([len(packet.redundancy)]))
            for r in packet.redundancy:
                if not 1 <= r.back <= 255:
                    raise PacketError("a redundant frame must lie 1..255 frames back")
                parts.append(bytes([r.back, r.frame.layers]))
            parts += [pack_frame(r.frame.codes, bits) for r in packet.redundancy]
    except BitstreamError as exc:
        raise PacketError(str(exc)) from None
    data = b"".join(parts)
    if len(data) > MAX_PACKET_BYTES:
        raise PacketError(f"packet of {len(data)} bytes exceeds {MAX_PACKET_BYTES}")
    return data


def _frames(data: bytes, pos: int, counts: list[int], bits: int, max_layers: int) -> tuple[list[Frame], int]:
    frames = []
    for layers in counts:
        if not 1 <= layers <= max_layers:
            raise PacketError(f"layer count {layers} outside 1..{max_layers}")
        size = payload_bytes(layers, bits)
        if pos + size > len(data):
            raise PacketError("truncated frame payload")
        try:
            codes = unpack_frame(data[pos : pos + size], bits, max_layers, layers)
        except BitstreamError as exc:
            raise PacketError(str(exc)) from None
        frames.append(Frame(codes))
        pos += size
    return frames, pos


def decode_packet(data: bytes, bits: int, max_layers: int) -> MediaPacket:
    """Parse strictly; any inconsistency raises PacketError (never anything else)."""
    if len(data) > MAX_PACKET_BYTES:
        raise PacketError(f"packet of {len(data)} bytes exceeds {MAX_PACKET_BYTES}")
    if len(data) < _HEADER.size:
        raise PacketError("truncated header")
    first, seq, timestamp, n = _HEADER.unpack_from(data)
    if first >> 4 != VERSION:
        raise PacketError(f"packet version {first >> 4}, expected {VERSION}")
    flags = first & 0x0F
    if flags & ~_KNOWN_FLAGS:
        raise PacketError(f"unknown flags 0x{flags:x}")
    if not 1 <= n <= MAX_FRAMES:
        raise PacketError(f"frame count {n} outside 1..{MAX_FRAMES}")
    pos = _HEADER.size
    if pos + n > len(data):
        raise PacketError("truncated layer counts")
    counts = list(data[pos : pos + n])
    frames, pos = _frames(data, pos + n, counts, bits, max_layers)
    redundancy: list[RedundantFrame] = []
    if flags & FLAG_REDUNDANCY:
        if pos >= len(data):
            raise PacketError("truncated redundancy block")
        r = data[pos]
        pos += 1
        if not 1 <= r <= MAX_REDUNDANT:
            raise PacketError(f"redundant frame count {r} outside 1..{MAX_REDUNDANT}")
        if pos + 2 * r > len(data):
            raise PacketError("truncated redundancy headers")
        backs = list(data[pos : pos + 2 * r : 2])
        red_counts = list(data[pos + 1 : pos + 2 * r : 2])
        pos += 2 * r
        if min(backs) < 1:
            raise PacketError("a redundant frame must lie at least one frame back")
        red_frames, pos = _frames(data, pos, red_counts, bits, max_layers)
        redundancy = [RedundantFrame(b, f) for b, f in zip(backs, red_frames)]
    if pos != len(data):
        raise PacketError(f"{len(data) - pos} trailing bytes")
    return MediaPacket(
        seq=seq,
        timestamp=timestamp,
        frames=tuple(frames),
        denoise=bool(flags & FLAG_DENOISE),
        talkspurt=bool(flags & FLAG_TALKSPURT),
        quiet=bool(flags & FLAG_QUIET),
        redundancy=tuple(redundancy),
    )


def seq_diff(a: int, b: int, modulo: int = SEQ_MODULO) -> int:
    """a - b on a wrapping counter, in (-modulo/2, modulo/2]."""
    d = (a - b) % modulo
    return d - modulo if d > modulo // 2 else d
