"""CallSession's reader: hostile packets are dropped and the call goes on; an unexpected
exception ends the call with a reason instead of leaving it up with no one reading."""

from __future__ import annotations

import asyncio

import pytest

import protocol.router
from call.session import CallSession
from protocol.messages import Bye, EndOfStream, Offer, Start, dump_message
from tests.fakes import FakeTransport, StubIncoming

HOSTILE_FEEDBACK = b"\xf1" + bytes(11) + b"\xff\xff" + bytes(14)  # hold_ms = 65535: a ValidationError once


async def test_a_feedback_packet_out_of_the_model_range_leaves_the_reader_reading() -> None:
    transport, incoming = FakeTransport(), StubIncoming()
    session = CallSession(transport, incoming=incoming)  # type: ignore[arg-type]
    transport.feed(HOSTILE_FEEDBACK, b"\xf1junk", b"\x10media", dump_message(Bye(reason="done")))
    summary = await asyncio.wait_for(session.run(), 2.0)
    assert summary.ended_by == "the other side hung up (done)"
    assert incoming.media == 1 and session.malformed_control == 1  # the short one only


async def test_an_unexpected_exception_in_the_reader_ends_the_call_with_a_logged_reason(
    monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    def broken(data: bytes):
        raise RuntimeError("parser bug")

    monkeypatch.setattr(protocol.router, "decode_feedback", broken)
    transport, incoming = FakeTransport(), StubIncoming()
    session = CallSession(transport, incoming=incoming)  # type: ignore[arg-type]
    transport.feed(HOSTILE_FEEDBACK)  # and then nothing: the call must not wait for a bye forever
    with caplog.at_level("ERROR", logger="call.session"):
        summary = await asyncio.wait_for(session.run(), 2.0)
    assert summary.ended_by == "internal error: RuntimeError: parser bug"
    assert "reader failed" in caplog.text
    assert [m.type for m in transport.controls] == ["bye"] and "parser bug" in transport.controls[0].reason


async def test_eos_and_bye_still_count_after_a_flood_of_malformed_control() -> None:
    transport, incoming = FakeTransport(), StubIncoming()
    session = CallSession(transport, incoming=incoming)  # type: ignore[arg-type]
    transport.feed(*['{"type": "start", "capture_epoch": "soon"}'] * 50)
    transport.feed(dump_message(EndOfStream()))
    summary = await asyncio.wait_for(session.run(), 2.0)
    assert summary.ended_by == "end of stream" and summary.malformed_control == 50  # counted and reported


async def test_a_call_without_media_ends_after_the_idle_timeout() -> None:
    transport, incoming = FakeTransport(), StubIncoming()
    session = CallSession(transport, incoming=incoming, idle_timeout_s=0.3)  # type: ignore[arg-type]
    transport.feed(b"\xf1junk", '{"type": "start"}')  # no media: control and junk do not count
    summary = await asyncio.wait_for(session.run(), 2.0)
    assert summary.ended_by == "no media for 0.3 s" and [m.type for m in transport.controls] == ["bye"]


async def test_media_keeps_a_call_up_past_the_idle_timeout() -> None:
    transport, incoming = FakeTransport(), StubIncoming()
    session = CallSession(transport, incoming=incoming, idle_timeout_s=0.3)  # type: ignore[arg-type]

    async def talk() -> None:
        for _ in range(8):
            transport.feed(b"\x10media")
            await asyncio.sleep(0.1)
        transport.feed(dump_message(Bye()))

    talking = asyncio.create_task(talk())
    summary = await asyncio.wait_for(session.run(), 3.0)
    await talking
    assert summary.ended_by == "the other side hung up" and incoming.media == 8


async def test_messages_out_of_turn_are_dropped_and_counted_and_the_call_goes_on() -> None:
    transport, incoming = FakeTransport(), StubIncoming()
    session = CallSession(transport, incoming=incoming)  # type: ignore[arg-type]
    transport.feed(dump_message(Start()), dump_message(Start()), dump_message(Offer(sdp="")), b"\x10media", dump_message(Bye()))
    summary = await asyncio.wait_for(session.run(), 2.0)
    assert summary.ended_by == "the other side hung up" and incoming.media == 1
    assert summary.illegal_control == 2 and summary.malformed_control == 0  # a second start, an offer mid-call
