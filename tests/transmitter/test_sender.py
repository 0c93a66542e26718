"""The one-way sender's control reader: hostile feedback is dropped, an unexpected exception
ends the call (with a bye and a reason), and feedback beyond the accepted rate is ignored.
The denoise switch reaches the encoder every frame, and a switch mid-stream from the next frame."""

from __future__ import annotations

import asyncio
from types import SimpleNamespace

import numpy as np
import pytest

import protocol.router
from protocol.feedback import decode_feedback, encode_feedback
from protocol.messages import Accept, Feedback, dump_message
from protocol.packetizer import Send
from protocol.packets import Frame, decode_packet
from tests.fakes import CFG, FakeTransport
from transmitter.sender import MIN_FEEDBACK_GAP_S, CallFailed, Transmitter

HOSTILE_FEEDBACK = b"\xf1" + bytes(11) + b"\xff\xff" + bytes(14)


def _transmitter() -> Transmitter:
    tx = Transmitter(SimpleNamespace(cfg=CFG), "m-1", layers=6)  # type: ignore[arg-type]

    async def stream_forever(transport, source) -> None:
        await asyncio.Event().wait()

    tx.stream = stream_forever  # type: ignore[method-assign]
    return tx


async def test_hostile_feedback_leaves_the_control_reader_reading() -> None:
    tx, transport = _transmitter(), FakeTransport()
    good = encode_feedback(Feedback(highest_seq=1, received=1, loss_fraction=0.0, jitter_ms=0.0, buffer_ms=40.0, concealed_fraction=0.0))
    transport.feed(dump_message(Accept(protocol_version=1, model_id="m-1", max_layers=24)), HOSTILE_FEEDBACK, good)
    call = asyncio.create_task(tx.run(transport, None))  # type: ignore[arg-type]
    for _ in range(100):
        await asyncio.sleep(0.01)
        if tx.stats.feedback_count == 1:
            break
    call.cancel()
    await asyncio.gather(call, return_exceptions=True)
    assert tx.stats.feedback_count == 1  # the report after the hostile one was still read


async def test_an_unexpected_exception_in_the_control_reader_ends_the_call(monkeypatch: pytest.MonkeyPatch) -> None:
    def broken(data: bytes):
        raise RuntimeError("parser bug")

    monkeypatch.setattr(protocol.router, "decode_feedback", broken)
    tx, transport = _transmitter(), FakeTransport()
    transport.feed(dump_message(Accept(protocol_version=1, model_id="m-1", max_layers=24)), HOSTILE_FEEDBACK)
    with pytest.raises(CallFailed, match="parser bug"):
        await asyncio.wait_for(tx.run(transport, None), 2.0)  # type: ignore[arg-type]
    assert transport.controls[-1].type == "bye" and "parser bug" in transport.controls[-1].reason


def test_feedback_faster_than_the_accepted_rate_is_ignored() -> None:
    """20,000 reports in a second cost 13 s of CPU in the rate policy; a receiver reports
    every 100 ms, early ones at least 30 ms apart."""
    tx = Transmitter(SimpleNamespace(cfg=CFG), "m-1", layers=6)  # type: ignore[arg-type]
    fb = Feedback(highest_seq=0, received=0, loss_fraction=0.0, jitter_ms=0.0, buffer_ms=0.0, concealed_fraction=0.0)
    for i in range(1000):
        tx.on_feedback(fb, 1.0 + i * 0.001)  # 1000 reports in one second
    accepted = tx.stats.feedback_count
    assert accepted <= 1 / MIN_FEEDBACK_GAP_S + 1 and tx.stats.feedback_ignored == 1000 - accepted
    tx.on_feedback(fb, 2.1)
    tx.on_feedback(fb, 2.2)  # the normal pace is untouched
    assert tx.stats.feedback_count == accepted + 2


def test_binary_feedback_round_trips_through_on_feedback() -> None:
    tx = Transmitter(SimpleNamespace(cfg=CFG), "m-1", layers=6)  # type: ignore[arg-type]
    fb = Feedback(highest_seq=5, received=5, loss_fraction=0.0, jitter_ms=1.0, buffer_ms=40.0, concealed_fraction=0.0)
    tx.on_feedback(decode_feedback(encode_feedback(fb)), 1.0)
    assert tx.stats.last_feedback is not None and tx.stats.last_feedback.buffer_ms == 40.0


def test_feedback_echoing_a_sent_packet_gives_the_rtt() -> None:
    """The packetizer's send-time table is wired to the feedback (virtual clock)."""
    tx = Transmitter(SimpleNamespace(cfg=CFG), "m-1", layers=6)  # type: ignore[arg-type]
    out = tx.packetizer.push(Frame(np.arange(6)), 0.1, None)
    assert isinstance(out, Send)
    tx.packetizer.sent(out, 10.0)
    fb = Feedback(highest_seq=0, received=1, loss_fraction=0.0, jitter_ms=0.0, buffer_ms=0.0, concealed_fraction=0.0, hold_ms=20.0)
    tx.on_feedback(fb, 10.1)
    assert tx.stats.rtt_ms is not None and abs(tx.stats.rtt_ms - 80.0) < 1e-6


# ---- the denoise switch ----------------------------------------------------------------------------
CFG_WITH_SWITCH = SimpleNamespace(**vars(CFG), denoise_conditioning=True)


class RecordingEncoder:
    """A streaming encoder that records the denoise argument of every call, and its resets."""

    def __init__(self) -> None:
        self.denoise: list[float] = []
        self.resets = 0

    def encode(self, frame: np.ndarray, n_layers: int, denoise: float = 0.0) -> np.ndarray:
        self.denoise.append(denoise)
        return np.zeros((n_layers, 1), np.int64)

    def reset(self) -> None:
        self.resets += 1

    def close(self) -> None:
        pass


class SwitchingSource:
    """`frames` silent frames; after handing over frame `switch_after`, sets the transmitter's
    switch (as the `d` key does between two frames)."""

    start_at: float | None = None

    def __init__(self, tx: Transmitter, frames: int, switch_after: int, denoise: bool) -> None:
        self.tx, self.frames, self.switch_after, self.denoise = tx, frames, switch_after, denoise

    async def __aiter__(self):
        for i in range(self.frames):
            yield np.zeros(CFG.hop, np.float32)
            if i == self.switch_after:
                self.tx.denoise = self.denoise


async def _stream(monkeypatch: pytest.MonkeyPatch, initial: bool, switch_after: int, to: bool) -> tuple[RecordingEncoder, list[bool]]:
    encoder = RecordingEncoder()
    monkeypatch.setattr("transmitter.sender.frame_encoder", lambda model, model_id, engine: encoder)
    tx = Transmitter(SimpleNamespace(cfg=CFG_WITH_SWITCH), "m-1", layers=6, denoise=initial)  # type: ignore[arg-type]
    transport = FakeTransport()
    await asyncio.wait_for(tx.stream(transport, SwitchingSource(tx, 8, switch_after, to)), 5.0)  # type: ignore[arg-type]
    packets = [decode_packet(p, CFG.bits_per_code, CFG.n_quantizers) for p in transport.media]
    return encoder, [p.denoise for p in packets]


async def test_the_denoise_flag_reaches_the_encoder_every_frame(monkeypatch: pytest.MonkeyPatch) -> None:
    encoder, flags = await _stream(monkeypatch, initial=True, switch_after=99, to=False)
    assert encoder.denoise[:2] == [0.0, 1.0]  # the warm-up pays both settings' set-up before capture
    assert encoder.denoise[2:] == [1.0] * 8 and flags == [True] * 8  # the packets say so too


async def test_a_switch_mid_stream_takes_effect_on_the_next_frame_without_a_reset(monkeypatch: pytest.MonkeyPatch) -> None:
    encoder, flags = await _stream(monkeypatch, initial=False, switch_after=2, to=True)
    assert encoder.denoise[2:] == [0.0, 0.0, 0.0, 1.0, 1.0, 1.0, 1.0, 1.0]  # frames 0..2 off, 3.. on
    assert flags == [False, False, False, True, True, True, True, True]
    assert encoder.resets == 1  # after the warm-up only: switching keeps the encoder's state (no added delay)
    encoder, _ = await _stream(monkeypatch, initial=True, switch_after=4, to=False)
    assert encoder.denoise[2:] == [1.0] * 5 + [0.0] * 3 and encoder.resets == 1


def test_a_model_without_the_switch_refuses_denoise() -> None:
    with pytest.raises(ValueError, match="m-1 has no denoise switch"):
        Transmitter(SimpleNamespace(cfg=CFG), "m-1", layers=6, denoise=True)  # type: ignore[arg-type]
    tx = Transmitter(SimpleNamespace(cfg=CFG), "m-1", layers=6)  # type: ignore[arg-type]
    assert not tx.has_denoise and not tx.denoise
    with pytest.raises(ValueError, match="no denoise switch"):
        tx.denoise = True
    tx.denoise = False  # off is always allowed
    assert Transmitter(SimpleNamespace(cfg=CFG_WITH_SWITCH), "m-1", layers=6).has_denoise  # type: ignore[arg-type]
