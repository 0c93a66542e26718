"""One end-to-end scenario per transport: a call through the relay, measured and written out."""

from __future__ import annotations

import csv
from pathlib import Path

import numpy as np
import pytest

from call.experiment import ExperimentConfig, ExperimentSummary, align_received, align_segments, run_experiment
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


def test_segment_alignment_follows_a_playout_that_moves() -> None:
    """Received audio 100 ms late, then 40 ms less late from the sent audio's 3 s on (a skip):
    one lag from the first 2 s misaligns the rest, a lag per 2 s segment realigns it from the
    next segment (call.experiment's STOI)."""
    rng = np.random.default_rng(0)
    sent = (rng.standard_normal(8 * 16000) * np.repeat(rng.uniform(0.1, 1.0, 8 * 25), 640)).astype(np.float32)  # 40 ms syllables
    late = np.concatenate([np.zeros(1600, np.float32), sent])
    skip = 3 * 16000 + 1600
    received = np.concatenate([late[:skip], late[skip + 640 :]])
    one_lag, segments = align_received(received, sent), align_segments(received, sent)
    np.testing.assert_array_equal(one_lag[: 3 * 16000], sent[: 3 * 16000])
    assert np.corrcoef(one_lag[4 * 16000 : 7 * 16000], sent[4 * 16000 : 7 * 16000])[0, 1] < 0.1
    np.testing.assert_array_equal(segments[: 2 * 16000], sent[: 2 * 16000])
    np.testing.assert_array_equal(segments[4 * 16000 :], sent[4 * 16000 :])  # the segments after the skip's


def test_segment_alignment_finds_audio_that_starts_ahead_after_a_garbled_start() -> None:
    """The first 2 frames lost (the playout starts 40 ms ahead of the sent audio) and the first
    2 s unlike what was sent: one lag (searched from 0 on) lands anywhere; the segments after
    the first still find theirs."""
    rng = np.random.default_rng(1)
    sent = (rng.standard_normal(8 * 16000) * np.repeat(rng.uniform(0.1, 1.0, 8 * 25), 640)).astype(np.float32)
    received = sent[640:].copy()
    received[:30000] = rng.standard_normal(30000).astype(np.float32)  # most of the first segment
    np.testing.assert_array_equal(align_segments(received, sent)[32000 : 7 * 16000], sent[32000 : 7 * 16000])
    clean_start = align_segments(sent[640:], sent)  # the first segment too, from its 41st ms
    np.testing.assert_array_equal(clean_start[640 : 7 * 16000], sent[640 : 7 * 16000])
    assert np.corrcoef(align_received(received, sent)[32000:64000], sent[32000:64000])[0, 1] < 0.1
