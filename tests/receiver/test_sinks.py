"""The speaker sink's bounded queue counts what it drops (clock drift once lost frames unseen)."""

from __future__ import annotations

from collections import deque

import numpy as np

from receiver.sinks import SpeakerSink


def test_a_full_speaker_queue_counts_each_frame_it_drops() -> None:
    sink = SpeakerSink.__new__(SpeakerSink)  # the queue alone: no sound card needed
    sink._queue, sink.underruns, sink.dropped = deque(maxlen=3), 0, 0
    for _ in range(5):
        sink.write(np.zeros(320, np.float32))
    assert sink.dropped == 2 and sink.queued == 3
    out = np.empty((320, 1), np.float32)
    for _ in range(4):
        sink._callback(out, 320, None, None)
    assert sink.underruns == 1


def test_an_atomic_wav_sink_leaves_an_existing_file_when_discarded(tmp_path) -> None:
    """`call --force` whose call failed once deleted the existing output."""
    from receiver.sinks import WavSink

    out = tmp_path / "out.wav"
    out.write_bytes(b"mine")
    sink = WavSink(out, 16000, atomic=True)
    sink.write(np.zeros(320, np.float32))
    sink.discard()
    assert out.read_bytes() == b"mine" and list(tmp_path.iterdir()) == [out]
    sink = WavSink(out, 16000, atomic=True)
    sink.write(np.zeros(320, np.float32))
    sink.close()  # the call connected: the new recording replaces it
    assert out.read_bytes()[:4] == b"RIFF" and list(tmp_path.iterdir()) == [out]
