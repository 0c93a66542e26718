"""One end-to-end scenario per transport: a call through the relay, measured and written out."""

from __future__ import annotations

import csv
from pathlib import Path

import pytest

from call.experiment import ExperimentConfig, ExperimentSummary, run_experiment
from receiver.playout_trace import Event, load_trace

SAMPLE = Path(__file__).resolve().parents[2] / "codec" / "samples" / "speech.wav"


@pytest.mark.slow
@pytest.mark.parametrize("transport", ["websocket", "webrtc"])
async def test_a_lossy_call_through_the_relay_is_measured(tmp_path: Path, transport: str) -> None:
    cfg = ExperimentConfig(scenario="loss-10", transport=transport, input=SAMPLE, out=tmp_path, duration_s=6.0, dump_trace=True)
    summary = await run_experiment(cfg)
    for name in ("timeline.csv", "timeline.png", "received.wav", "summary.json"):
        assert (tmp_path / name).stat().st_size > 0
    assert ExperimentSummary.model_validate_json((tmp_path / "summary.json").read_text()) == summary
    rows = list(csv.DictReader((tmp_path / "timeline.csv").open()))
    assert 50 <= len(rows) <= 80 and float(rows[-1]["t"]) >= 5.5  # every 100 ms
    relay = summary.relay[-1]["forward"]  # the media's relay: TCP (websocket) or UDP after it (WebRTC)
    assert relay["sent"] > 100  # the media crossed the relay
    if transport == "webrtc":  # UDP: the relay drops 10 % and the receiver reports it
        assert 0.04 <= relay["dropped_loss"] / relay["sent"] <= 0.16
        assert 0.03 <= summary.loss_fraction <= 0.2
        assert summary.played_fraction >= 0.85
        assert summary.media_packets_by_path["websocket"] == 0  # the data channel carried it all
    else:  # TCP: loss becomes retransmission delay, nothing is lost
        assert relay["retransmitted"] > 0 and summary.loss_fraction == 0.0
    assert summary.pesq_wb > 1.0
    trace = load_trace(tmp_path / "playout_trace.npz")  # every period the listener rendered, for bench.concealment_replay
    assert trace.sent.size == 6 * 16000 and 250 <= int((trace.events != Event.SKIP).sum()) <= 400
