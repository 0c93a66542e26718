"""Control messages: JSON objects with a `type`, validated by pydantic, size-limited.

hello (caller -> callee), accept / reject (callee -> caller), offer / answer (WebRTC
session descriptions, caller -> callee -> caller), start (a sender, before its first packet),
feedback (receiver -> sender, every 100 ms), eos (a sender
has no more media; the call goes on while the other direction plays), bye (either way: the
call ends).

In a full-duplex call each side is both sender and receiver on one connection: start, eos and
media concern the direction towards the side that gets them, feedback the opposite one.
"""

from __future__ import annotations

from typing import Annotated, Literal, Union

from pydantic import BaseModel, ConfigDict, Field, TypeAdapter, ValidationError

PROTOCOL_VERSION = 1
MAX_MESSAGE_BYTES = 8192  # an offer or answer (SDP) with many host candidates is the largest
MAX_SDP_CHARS = 7000


# How media travels: the signalling websocket itself, or a WebRTC data channel.
MediaPath = Literal["websocket", "webrtc"]


class _Message(BaseModel):
    # strict: on the wire a string is no integer, a float no integer, a bool no number
    # (pydantic's lax mode took "3" for 3); an integer still stands for a float.
    model_config = ConfigDict(extra="forbid", frozen=True, strict=True)


class Hello(_Message):
    type: Literal["hello"] = "hello"
    protocol_version: int = Field(ge=0, le=65535)
    model_id: str = Field(max_length=64)
    sample_rate: int = Field(gt=0, le=192_000)
    frame_ms: float = Field(gt=0, le=1000)
    max_layers: int = Field(ge=1, le=255)
    # Bits a quantizer stage takes a frame: what a layer count means on the wire and to rate control.
    bits_per_stage: int = Field(default=10, ge=1, le=16)
    token: str = Field(default="", max_length=256)
    # "webrtc": the caller will send an offer; media then prefers the data channel.
    media: MediaPath = "websocket"


class Accept(_Message):
    type: Literal["accept"] = "accept"
    protocol_version: int = Field(ge=0, le=65535)
    model_id: str = Field(max_length=64)
    max_layers: int = Field(ge=1, le=255)
    bits_per_stage: int = Field(default=10, ge=1, le=16)


class Start(_Message):
    """Sent by the caller right before its first media packet."""

    type: Literal["start"] = "start"
    # Wall-clock time (s since the epoch) of the first sample of frame 0: with a shared clock
    # (same machine, or NTP) the receiver can report mouth-to-ear delay.
    capture_epoch: float | None = Field(default=None, ge=0)


class Offer(_Message):
    """The caller's WebRTC session description (ICE candidates included: no trickle)."""

    type: Literal["offer"] = "offer"
    sdp: str = Field(max_length=MAX_SDP_CHARS)


class Answer(_Message):
    """The callee's session description; empty when it does not do WebRTC (media stays on the websocket)."""

    type: Literal["answer"] = "answer"
    sdp: str = Field(default="", max_length=MAX_SDP_CHARS)


class EndOfStream(_Message):
    """This side sends no more media (its input ended); it still receives."""

    type: Literal["eos"] = "eos"


class Reject(_Message):
    type: Literal["reject"] = "reject"
    reason: str = Field(max_length=512)


class Feedback(_Message):
    """Receiver report: RFC 3550 loss and jitter plus what the sender needs for RTT."""

    type: Literal["feedback"] = "feedback"
    highest_seq: int = Field(ge=0)  # extended (wrap count * 65536 + seq)
    received: int = Field(ge=0)
    loss_fraction: float = Field(ge=0.0, le=1.0)  # since the previous feedback
    jitter_ms: float = Field(ge=0.0, le=60_000)
    hold_ms: float = Field(default=0.0, ge=0.0, le=60_000)  # time between highest_seq's arrival and this message (RTT)
    buffer_ms: float = Field(ge=0.0, le=60_000)
    concealed_fraction: float = Field(ge=0.0, le=1.0)
    # For the sender's bandwidth estimate: media bytes received so far (with `received`, the
    # sender derives the wire rate that got through), and how far the latest packet arrived
    # above the fastest path of the last 10 s (queueing; one-way, no clock sync needed).
    received_bytes: int = Field(default=0, ge=0)
    recovered: int = Field(default=0, ge=0)  # frames played from redundancy so far
    queue_delay_ms: float = Field(default=0.0, ge=0.0, le=60_000)


class Bye(_Message):
    type: Literal["bye"] = "bye"
    reason: str = Field(default="", max_length=512)


Message = Annotated[Union[Hello, Accept, Offer, Answer, Start, EndOfStream, Reject, Feedback, Bye], Field(discriminator="type")]
_ADAPTER: TypeAdapter[Message] = TypeAdapter(Message)


class MessageError(ValueError):
    """A control message that is oversized, not JSON, or not one of ours."""


def parse_message(data: str | bytes) -> Message:
    if len(data) > MAX_MESSAGE_BYTES:
        raise MessageError(f"control message of {len(data)} bytes exceeds {MAX_MESSAGE_BYTES}")
    try:
        return _ADAPTER.validate_json(data)
    except ValidationError as exc:
        first = exc.errors()[0]
        where = ".".join(str(p) for p in first.get("loc", ())) or "message"
        raise MessageError(f"invalid control message ({where}: {first.get('msg', 'invalid')})") from None


def dump_message(message: Message) -> str:
    return message.model_dump_json(exclude_none=True)
