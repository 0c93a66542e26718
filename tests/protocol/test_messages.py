"""Control messages: round trips, and any hostile input refused as MessageError."""

from __future__ import annotations

import json

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from protocol.messages import (
    MAX_MESSAGE_BYTES,
    Accept,
    Answer,
    Bye,
    EndOfStream,
    Feedback,
    Hello,
    MessageError,
    Offer,
    Reject,
    Start,
    dump_message,
    parse_message,
)

EXAMPLES = [
    Hello(protocol_version=1, model_id="ssc16k-abc", sample_rate=16000, frame_ms=20, max_layers=24, token="t"),
    Accept(protocol_version=1, model_id="ssc16k-abc", max_layers=24),
    Reject(reason="wrong token"),
    Feedback(highest_seq=70000, received=69990, loss_fraction=0.01, jitter_ms=3.5, hold_ms=4.0, buffer_ms=60, concealed_fraction=0.0),
    Start(capture_epoch=1.7e9),
    Bye(reason="hang-up"),
    Hello(protocol_version=1, model_id="m", sample_rate=16000, frame_ms=20, max_layers=24, media="webrtc"),
    Offer(sdp="v=0\r\n" * 100),
    Answer(sdp=""),
    EndOfStream(),
]


@pytest.mark.parametrize("message", EXAMPLES, ids=lambda m: m.type)
def test_round_trip(message) -> None:
    assert parse_message(dump_message(message)) == message


@settings(max_examples=10_000)
@given(st.one_of(st.binary(max_size=200), st.text(max_size=200)))
def test_fuzzed_input_raises_only_message_errors(data) -> None:
    try:
        parse_message(data)
    except MessageError:
        pass


json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(max_size=20),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=10), inner, max_size=4),
    max_leaves=10,
)


@settings(max_examples=3000)
@given(
    st.sampled_from(["hello", "accept", "start", "reject", "feedback", "layer_request", "bye", "offer", "answer", "eos", "other"]),
    st.dictionaries(st.text(max_size=20), json_values, max_size=6),
)
def test_wrong_shapes_raise_only_message_errors(kind: str, fields: dict) -> None:
    try:
        parse_message(json.dumps({"type": kind} | fields))
    except MessageError:
        pass


def test_oversized_and_out_of_range_are_refused() -> None:
    with pytest.raises(MessageError, match="exceeds"):
        parse_message("x" * (MAX_MESSAGE_BYTES + 1))
    with pytest.raises(MessageError, match="loss_fraction"):
        parse_message(
            json.dumps({"type": "feedback", "highest_seq": 1, "received": 1, "loss_fraction": 2.0, "jitter_ms": 0, "buffer_ms": 0, "concealed_fraction": 0})
        )
    with pytest.raises(MessageError, match="type"):
        parse_message(json.dumps({"type": "nope"}))


@pytest.mark.parametrize(
    "message",
    [
        {"type": "layer_request", "max_layers": "3"},
        {"type": "layer_request", "max_layers": 3.0},
        {"type": "layer_request", "max_layers": True},
        {"type": "accept", "protocol_version": "1", "model_id": "m", "max_layers": 24},
        {"type": "hello", "protocol_version": 1, "model_id": "m", "sample_rate": "16000", "frame_ms": 20, "max_layers": 24},
        {"type": "feedback", "highest_seq": "1", "received": 1, "loss_fraction": 0, "jitter_ms": 0, "buffer_ms": 0, "concealed_fraction": 0},
        {"type": "start", "capture_epoch": "1700000000"},
    ],
    ids=lambda m: f"{m['type']}",
)
def test_wire_types_are_strict(message: dict) -> None:
    """Pydantic's lax mode took "3" (or 3.0, or true) for 3: on the wire a value has its own type."""
    with pytest.raises(MessageError):
        parse_message(json.dumps(message))


def test_an_integer_still_stands_for_a_float() -> None:
    fb = parse_message(
        json.dumps({"type": "feedback", "highest_seq": 1, "received": 1, "loss_fraction": 0, "jitter_ms": 3, "buffer_ms": 60, "concealed_fraction": 0})
    )
    assert isinstance(fb, Feedback) and fb.jitter_ms == 3.0


@settings(max_examples=1000)
@given(st.sampled_from(EXAMPLES), st.data())
def test_mutated_real_messages_raise_only_message_errors(message, data) -> None:
    """Every message kind as sent, then characters replaced, inserted or cut anywhere (keys,
    values, quotes, the type): it parses or raises MessageError, nothing else."""
    text = list(dump_message(message))
    for _ in range(data.draw(st.integers(1, 4))):
        at = data.draw(st.integers(0, max(0, len(text) - 1)))
        op = data.draw(st.sampled_from(["replace", "insert", "cut"]))
        char = data.draw(st.sampled_from(list('"{}[]:,0-9.eE+ \\') + ["true", "null", "1e999", "NaN", "\u00e9", "\x00"]))
        if op == "replace" and text:
            text[at] = char
        elif op == "insert":
            text.insert(at, char)
        else:
            del text[at:]
    raw = "".join(text)
    for data_ in (raw, raw.encode("utf-8", "surrogatepass")):
        try:
            parse_message(data_)
        except MessageError:
            pass
