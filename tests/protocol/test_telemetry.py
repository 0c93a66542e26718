"""protocol.telemetry: the records survive their JSON form (the --stats-json lines) unchanged."""

from __future__ import annotations

import json

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from pydantic import ValidationError

from protocol.telemetry import CallerSummary, CallSummary, MediaPathCounts, Percentiles, ReceiveSnapshot, SendSnapshot

counts = st.integers(0, 2**40)
figures = st.floats(0.0, 1e6, allow_nan=False)
maybe = st.none() | figures
paths = st.dictionaries(st.sampled_from(["websocket", "webrtc"]), counts)
receive = st.builds(
    ReceiveSnapshot,
    frames_played=counts,
    loss_fraction=st.floats(0.0, 1.0),
    jitter_ms=figures,
    sink_underruns=counts,
    out_of_order_discarded=counts,
    mouth_to_ear_ms=st.builds(Percentiles, p50=maybe, p95=maybe),
    ended_by=st.text(max_size=40),
    cpu_percent_of_one_core=maybe,
)
send = st.builds(
    SendSnapshot,
    frames=counts,
    drained=counts,
    capture_overruns=counts,
    outage_dropped=counts,
    rtt_ms=maybe,
    remote_loss_fraction=st.none() | st.floats(0.0, 1.0),
)
calls = st.builds(
    CallSummary,
    ended_by=st.text(max_size=40),
    malformed_control=counts,
    sent=st.none() | send,
    received=st.none() | receive,
    media_path=st.builds(MediaPathCounts, sent=paths, received=paths),
)


@settings(max_examples=80, deadline=None)
@given(calls)
def test_a_call_summary_survives_its_json_line(summary: CallSummary) -> None:
    line = json.dumps(summary.json_record())
    assert CallSummary.model_validate_json(line) == summary
    record = json.loads(line)
    assert ("sent" in record) == (summary.sent is not None) and ("received" in record) == (summary.received is not None)


@settings(max_examples=30, deadline=None)
@given(calls, st.sampled_from(["webrtc", "websocket"]), figures, counts)
def test_a_callers_summary_survives_its_json_line(summary: CallSummary, media: str, setup_ms: float, reconnects: int) -> None:
    caller = CallerSummary(**dict(summary), media=media, setup_ms=setup_ms, reconnects=reconnects)
    assert CallerSummary.model_validate_json(json.dumps(caller.json_record())) == caller


def test_the_json_keeps_the_key_names_its_readers_use() -> None:
    record = CallSummary(ended_by="eos", sent=SendSnapshot(), received=ReceiveSnapshot()).json_record()
    assert {"ended_by", "sent", "received", "media_path"} <= record.keys()
    assert {"frames_played", "frames_received", "loss_fraction", "mouth_to_ear_ms", "cpu_percent_of_one_core"} <= record["received"].keys()
    assert record["received"]["mouth_to_ear_ms"] == {"p50": None, "p95": None}
    assert {"frames", "sent", "skipped", "rtt_ms", "remote_loss_fraction"} <= record["sent"].keys()


def test_records_are_strict_and_closed() -> None:
    with pytest.raises(ValidationError):
        ReceiveSnapshot(frames_played=1.5)  # a counter is an int
    with pytest.raises(ValidationError):
        SendSnapshot(echo_send_time_ms=3.0)  # no field that nobody fills
    with pytest.raises(ValidationError):
        CallSummary(ended_by="x").ended_by = "y"  # a snapshot does not change
