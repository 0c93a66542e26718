"""The output device's clock against the playout's (sans-I/O).

The playout pops a frame every `frame_s` of the event loop's clock; a sound card plays them on
its own crystal. One that runs 200 ppm slow gains a frame of backlog every 100 s, and a bounded
queue in front of it would then drop a frame every ~100 s, unseen. So the device's backlog is
the signal: while more than `target_frames` wait for the device, the playout waits one frame
longer before its next pop. The frames it does not pop stay in the jitter buffer, whose own
rule (skip a frame when its level stays above target) wins that delay back, as it does when a
sender's clock runs fast. A device that runs fast underruns (plays a silent block, counted by
the sink) and the jitter buffer's level falls until it waits: nothing is lost unseen either way.
"""

from __future__ import annotations

from dataclasses import dataclass

DEVICE_BACKLOG_FRAMES = 3  # a sound card's own buffering plus a little scheduling slack


@dataclass
class DeviceClock:
    frame_s: float
    target_frames: int = DEVICE_BACKLOG_FRAMES
    waits: int = 0  # frames the playout waited for the device

    def extra_wait(self, backlog_frames: int | None) -> float:
        """Seconds to add before the next pop, given the frames now queued for the device
        (None: the sink has no clock of its own, e.g. a file)."""
        if backlog_frames is None or backlog_frames <= self.target_frames:
            return 0.0
        self.waits += 1
        return self.frame_s
