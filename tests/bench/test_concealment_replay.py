"""`python -m bench.concealment_replay`: a recorded playout replayed through both concealers."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from bench.concealment_replay import as_played, drift, frame_offset, gap_lengths, main, received_frames, replay
from codec.concealment import LatentPredictor, PredictorConfig
from codec.weights import load_model
from protocol.packets import Frame
from protocol.playout import Action, Playout
from receiver.playout_trace import PlayoutTrace, Trace

LOST = {30, 50, 51, 52, 53, 54, 55}  # one lost frame, then a 6-frame packet the buffer expanded over


@pytest.fixture(scope="module")
def recorded() -> tuple[Trace, np.ndarray]:
    """A 2 s voiced tone through the default model: 8 stages, then 40 from frame 60; frame 30
    concealed, 50..55 expanded over, 70 skipped for delay, 80 from a redundant copy."""
    model, model_id = load_model()
    t = np.arange(32000) / 16000
    sent = ((0.3 * np.sin(2 * np.pi * 150 * t) + 0.1 * np.sin(2 * np.pi * 450 * t)) * (0.6 + 0.4 * np.sin(2 * np.pi * 3 * t))).astype(np.float32)
    with torch.no_grad():
        codes = model.encode(torch.from_numpy(sent)[None], model.cfg.n_quantizers)[0].numpy()
    trace = PlayoutTrace(model.cfg.n_quantizers)
    for i in range(codes.shape[1]):
        frame = Frame(codes[: 8 if i < 60 else 40, i].astype(np.int64))
        if i == 30:
            trace.add(Playout(Action.CONCEAL, index=i))
        elif i in LOST:
            trace.add(Playout(Action.EXPAND))
        elif i == 70:
            continue  # skipped: decoded with the next one
        elif i == 71:
            trace.add(Playout(Action.PLAY, frame, skipped=[Frame(codes[:40, 70].astype(np.int64))], index=i))
        else:
            trace.add(Playout(Action.PLAY_REDUNDANT if i == 80 else Action.PLAY, frame, index=i))
    return trace.trace(sent, model_id), codes


def test_received_frames_are_placed_where_they_were_sent(recorded) -> None:
    trace, codes = recorded
    frames = received_frames(trace)
    assert set(range(codes.shape[1])) - set(frames) == LOST
    np.testing.assert_array_equal(frames[70], codes[:40, 70])  # the skipped frame, before the one played after it
    assert frames[80].size == 40 and frames[10].size == 8
    assert frame_offset(frames, codes) == 0
    shifted = {i - 2: c for i, c in frames.items() if i >= 2}  # playout's frame 0 was the third sent
    assert frame_offset(shifted, codes) == 2
    assert gap_lengths([i not in frames for i in range(codes.shape[1])]) == {1: 1, 6: 1}
    assert drift(trace) == (-1, 0)  # the expansion stood in for the lost packet; the skipped frame put playout a frame ahead


@pytest.mark.slow  # the model, the ONNX decoder and PESQ on a dozen decodes: a few seconds
def test_both_concealers_replay_the_same_trace(recorded, capsys, tmp_path) -> None:
    trace, _ = recorded
    stats, rows = replay(trace, LatentPredictor(PredictorConfig()).eval(), stages=(80,))
    assert (stats.played, stats.redundant, stats.concealed, stats.expanded, stats.skipped) == (91, 1, 1, 6, 1)
    assert stats.lost_fraction == pytest.approx(len(LOST) / 100) and stats.layers_p10 == 8
    assert stats.layers_at_fewest == pytest.approx(53 / 93, abs=1e-3)  # frames 0..59 at 8 stages, less the 7 lost
    by = {(r.case, r.concealer): r for r in rows}
    for name in ("repeat", "neural"):
        assert {("as played", name), ("frame-aligned", name), ("frame-aligned, 80 stages", name)} <= set(by)
        # The codec with no loss and every stage is the ceiling of any lossy replay.
        assert by["no loss, 80 stages", "codec"].pesq_wb > by["frame-aligned", name].pesq_wb
    from bench.concealment_replay import _Player

    player = _Player(trace.model_id, LatentPredictor(PredictorConfig()).eval())
    assert as_played(player, trace, "repeat").size == stats.periods * player.hop  # a skipped frame plays nothing
    player.decoder.close()
    assert main([str(tmp_path / "missing.npz")]) == 2 and capsys.readouterr().err.startswith("error: ")
