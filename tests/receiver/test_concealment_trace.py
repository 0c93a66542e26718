"""The playout trace (`receiver.playout_trace`): every rendered decision recorded in order, with
its frame's codes, and read back as written; attached to the receiver, it sees what the
concealer was asked to do."""

from __future__ import annotations

import numpy as np

from codec.weights import load_model
from protocol.packets import Frame
from protocol.playout import Action, Playout
from receiver.incoming import IncomingStream
from receiver.playout_trace import Event, PlayoutTrace, load_trace
from receiver.sinks import WavSink


def _frame(*codes: int) -> Frame:
    return Frame(np.array(codes, np.int64))


def test_decisions_are_recorded_in_order_and_round_trip(tmp_path) -> None:
    trace = PlayoutTrace(stages=6)
    trace.add(Playout(Action.WAIT))  # before playout starts: nothing rendered
    trace.add(Playout(Action.PLAY, _frame(1, 2, 3, 4, 5), index=0))
    trace.add(Playout(Action.CONCEAL, index=1, following=_frame(6, 6), following_distance=2))  # the frame it aimed at
    trace.add(Playout(Action.EXPAND))
    trace.add(Playout(Action.PLAY_REDUNDANT, _frame(7, 8), index=3))
    trace.add(Playout(Action.PLAY, _frame(9, 9, 9, 9, 9, 9), skipped=[_frame(4, 4, 4)], index=5))
    sent = np.linspace(-0.5, 0.5, 960, dtype=np.float32)
    trace.save(tmp_path / "t.npz", sent, "model-abc")
    got = load_trace(tmp_path / "t.npz")
    assert got.events.tolist() == [Event.PLAY, Event.CONCEAL, Event.EXPAND, Event.PLAY_REDUNDANT, Event.SKIP, Event.PLAY]
    assert got.indices.tolist() == [0, 1, -1, 3, -1, 5]
    assert got.layers.tolist() == [5, 2, 0, 2, 3, 6]
    assert got.codes[1].tolist() == [6, 6, -1, -1, -1, -1] and got.distances.tolist() == [0, 2, 0, 0, 0, 0]
    assert got.codes[0].tolist() == [1, 2, 3, 4, 5, -1] and got.codes[4].tolist() == [4, 4, 4, -1, -1, -1]
    np.testing.assert_array_equal(got.sent, sent)
    assert got.model_id == "model-abc"


def test_a_trace_from_before_distances_were_recorded_aims_at_the_next_frame(tmp_path) -> None:
    trace = PlayoutTrace(stages=2)
    for decision in (
        Playout(Action.PLAY, _frame(1), index=0),
        Playout(Action.CONCEAL, index=1, following=_frame(2), following_distance=1),
        Playout(Action.CONCEAL, index=2),
    ):
        trace.add(decision)
    t = trace.trace(np.zeros(4, np.float32), "m")
    np.savez_compressed(tmp_path / "old.npz", events=t.events, indices=t.indices, codes=t.codes, sent=t.sent, model_id=np.array("m"))
    assert load_trace(tmp_path / "old.npz").distances.tolist() == [0, 1, 0]


async def test_an_attached_trace_sees_every_rendered_period(tmp_path) -> None:
    model, model_id = load_model()
    stream = IncomingStream(model, model_id, WavSink(tmp_path / "rx.wav", 16000), None, concealment="repeat")
    stream.trace = PlayoutTrace(model.cfg.n_quantizers)
    codes = np.zeros(8, np.int64)
    try:
        for decision in (Playout(Action.PLAY, Frame(codes), index=0), Playout(Action.CONCEAL, index=1), Playout(Action.PLAY, Frame(codes), index=2)):
            stream._render(decision)
    finally:
        stream.close()
    got = stream.trace.trace(np.zeros(0, np.float32), model_id)
    assert got.events.tolist() == [Event.PLAY, Event.CONCEAL, Event.PLAY] and got.layers.tolist() == [8, 0, 8]
