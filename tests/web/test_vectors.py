"""The vectors the page's tests read (web/test/vectors.json) are what the Python protocol writes and reads."""

from __future__ import annotations

import json

import pytest

from protocol.messages import Hello, parse_message
from protocol.packets import PacketError, decode_packet
from tests.web.vectors import BITS, MAX_LAYERS, PATH, vectors


def test_the_committed_vectors_are_what_the_python_protocol_writes_now() -> None:
    assert json.loads(PATH.read_text()) == json.loads(json.dumps(vectors())), "run `python -m tests.web.vectors` and commit web/test/vectors.json"


def test_the_pages_hello_is_the_same_hello_to_the_listener() -> None:
    messages = json.loads(PATH.read_text())["messages"]
    page = parse_message(messages["page_hello"])
    assert isinstance(page, Hello) and page == parse_message(messages["hello"])


def test_every_message_vector_parses() -> None:
    for text in json.loads(PATH.read_text())["messages"].values():
        parse_message(text)


def test_the_packet_vectors_decode_to_their_fields_and_the_malformed_ones_are_refused() -> None:
    data = json.loads(PATH.read_text())
    for case in data["packets"]:
        packet = decode_packet(bytes.fromhex(case["hex"]), BITS, MAX_LAYERS)
        assert (packet.seq, packet.timestamp, packet.quiet, packet.talkspurt, packet.denoise) == (
            case["seq"],
            case["timestamp"],
            case["quiet"],
            case["talkspurt"],
            case["denoise"],
        )
        assert [f.codes.tolist() for f in packet.frames] == case["frames"]
        assert [(r.back, r.frame.codes.tolist()) for r in packet.redundancy] == [(r["back"], r["codes"]) for r in case["redundancy"]]
    for bad in data["malformed"]:
        with pytest.raises(PacketError):
            decode_packet(bytes.fromhex(bad), BITS, MAX_LAYERS)
