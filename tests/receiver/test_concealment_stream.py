"""The receiver's render step with either concealer, on the default model: a stream with lost
frames plays a frame of audio for every period, and the neural one carries the voice on."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from codec.weights import load_model
from protocol.packets import Frame
from protocol.playout import Action, Playout
from receiver.concealment import NeuralConcealer, RepeatConcealer
from receiver.incoming import IncomingStream
from receiver.sinks import WavSink


@pytest.fixture(scope="module")
def coded():
    model, model_id = load_model()
    t = np.arange(16000) / 16000
    voiced = (0.3 * np.sin(2 * np.pi * 150 * t) + 0.15 * np.sin(2 * np.pi * 450 * t)).astype(np.float32)
    codes = model.encode(torch.from_numpy(voiced)[None], 24)[0].numpy()  # [24, 50]
    return model, model_id, codes


@pytest.mark.parametrize("name, kind", [("repeat", RepeatConcealer), ("neural", NeuralConcealer)])
async def test_a_stream_with_lost_frames_plays_every_period(coded, name: str, kind: type, tmp_path) -> None:
    model, model_id, codes = coded
    stream = IncomingStream(model, model_id, WavSink(tmp_path / "rx.wav", 16000), None, concealment=name)
    try:
        assert isinstance(stream.concealer, kind)
        lost = np.zeros(codes.shape[1], bool)
        lost[[20, 30, 31, 40, 41, 42]] = True
        played = [stream._render(Playout(Action.CONCEAL) if gone else Playout(Action.PLAY, Frame(codes[:, t]))) for t, gone in enumerate(lost)]
    finally:
        stream.close()
    assert all(p.shape == (model.cfg.hop,) and np.isfinite(p).all() for p in played)
    level = np.array([np.sqrt(np.mean(p**2)) for p in played])
    speech = np.median(level[5:20])
    assert speech > 0.05
    if name == "neural":
        # Continuous: a lost frame inside speech is not silence, and the return does not click
        # (the first returned sample is near the last concealed one, within a frame's own steps).
        assert (level[lost] > 0.05 * speech).all()  # comfort noise is ~0.015 of this tone
        for t in (21, 32, 43):
            step = abs(played[t][0] - played[t - 1][-1])
            assert step < 4 * np.abs(np.diff(played[t])).max()
