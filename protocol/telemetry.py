"""What a call reports about itself: one typed snapshot per side, and the call's record.

`ReceiveSnapshot` is the incoming half's (`IncomingStream.snapshot`), `SendSnapshot` the
outgoing half's (`SendStats.snapshot`), `CallSummary` the call's (`CallSession.summary`: how
it ended and both halves). Frozen and strict, like the wire messages: a counter is an int, a
figure a float, and a field that nobody fills cannot be added by accident. Serialised as the
`--stats-json` lines (`CallSummary.json_record`), with the key names the earlier dicts had.
"""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, ConfigDict


class _Record(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True, strict=True)


class Percentiles(_Record):
    """Median and 95th percentile; None before the first value."""

    p50: float | None = None
    p95: float | None = None


class ReceiveSnapshot(_Record):
    """The incoming half so far: what came, what played, what was concealed or dropped and why."""

    frames_played: int = 0  # real frames (not concealment)
    frames_received: int = 0  # packets counted by RFC 3550's statistics
    loss_fraction: float = 0.0  # packets lost / expected, the whole call
    jitter_ms: float = 0.0  # RFC 3550's interarrival jitter
    concealed_fraction: float = 0.0  # of the frames shown: concealed (lost) + expanded (waiting)
    concealed: int = 0  # frames concealed because they were lost (later ones had come)
    expanded: int = 0  # frames of concealment played while the buffer ran dry or refilled
    longest_gap_ms: int = 0  # the longest run of concealed frames
    redundant_played: int = 0  # frames played from a later packet's redundancy
    late: int = 0  # frames that came after their play time
    duplicates: int = 0  # frames that came twice (the playout buffer's count)
    out_of_order_discarded: int = 0  # packets too far from the sequence to count (RFC 3550 A.1)
    skipped_for_delay: int = 0
    skipped_speech: int = 0  # of skipped_for_delay, frames not marked quiet
    flushed_for_delay: int = 0
    jumped: int = 0  # after an outage: resumed at the first frame that came
    jumped_ahead: int = 0  # a frame far ahead restarted playout (a fast sender)
    timeline_resets: int = 0  # a jump of more than a few seconds: a new time line
    dropped_frames: int = 0  # every frame never played: skipped, flushed, jumped
    sink_dropped: int = 0  # lost to the output device's full queue
    sink_underruns: int = 0  # the output device found nothing to play
    device_waits: int = 0  # frames the playout waited for a slow output device
    malformed: int = 0  # packets and control messages that did not parse
    early_feedback: int = 0  # reports sent before their 100 ms because a queue built
    packet_kbps: float = 0.0  # media payload received per second of audio played
    layers_mean: float = 0.0
    buffer_ms_mean: float = 0.0
    target_delay_ms: float = 0.0
    mouth_to_ear_ms: Percentiles = Percentiles()  # the whole call, 1 ms bins (protocol.percentiles)
    ended_by: str = ""
    cpu_percent_of_one_core: float | None = None


class SendSnapshot(_Record):
    """The outgoing half so far: what was captured, encoded, sent or not, and what came back."""

    frames: int = 0  # frames encoded
    sent: int = 0  # packets
    skipped: int = 0  # packets not sent: the link was backed up, or the transport refused them
    drained: int = 0  # packets not sent to drain a queue (the rate policy)
    bytes: int = 0  # media payload
    wire_bytes: int = 0  # payload + the transport's per-packet overhead
    capture_overruns: int = 0  # input frames the sound card delivered that the encoder never took
    outage_dropped: int = 0  # input frames dropped while no call was sending (a reconnecting caller)
    feedback_count: int = 0
    feedback_ignored: int = 0  # reports that came too soon after the last one taken
    rtt_ms: float | None = None  # smoothed
    remote_loss_fraction: float | None = None  # from the latest feedback (its interval)
    cpu_percent_of_one_core: float | None = None


class MediaPathCounts(_Record):
    """Media packets by path ("websocket", "webrtc"): a WebRTC call that fell back shows both."""

    sent: dict[str, int] = {}
    received: dict[str, int] = {}


class CallSummary(_Record):
    """One call as it ended: why, both halves (a one-way call has one), and the media paths."""

    ended_by: str
    malformed_control: int = 0  # control messages and feedback that did not parse
    illegal_control: int = 0  # well-formed control messages out of turn (a second start, a hello mid-call), dropped
    sent: SendSnapshot | None = None
    received: ReceiveSnapshot | None = None
    media_path: MediaPathCounts = MediaPathCounts()

    def json_record(self) -> dict[str, Any]:
        """The `--stats-json` line: JSON types; a half the call did not have is left out."""
        absent = {name for name in ("sent", "received") if getattr(self, name) is None}
        return self.model_dump(mode="json", exclude=absent)


class CallerSummary(CallSummary):
    """A dialled call (`ssvoip call`): the call's record plus how it was set up."""

    media: str  # the media path set up: "webrtc" or "websocket"
    setup_ms: float  # the first set-up
    reconnects: int = 0
    dropped_datagrams: int | None = None  # WebRTC only: datagrams the transport's full queue dropped
