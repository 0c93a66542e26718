"""The audio front end: echo cancellation, gain control, high-pass filter and noise suppression
between the microphone and the encoder (WebRTC's audio processing module, through `livekit`).

    microphone (20 ms float32 frames) -> FrontEnd.process -> encoder
    speaker (what the sink plays)     -> FrontEnd.add_reference   (the far end: the echo to remove)

WebRTC's module (APM) takes 10 ms int16 frames, so each 20 ms codec frame is cut into two APM
frames and put back together (a reshape: no latency added, frames in == frames out). The far
end's reference comes in blocks of any length, from the speaker's audio thread; it is queued
and fed to the APM, 10 ms at a time, right before the next microphone frame is processed.

Two APM instances run in a row when gain control is on: the first cancels the echo, filters
and denoises, the second controls the gain. The echo suppression achieved (ERLE) is measured
between the microphone and the first one's output, while the far end is playing. It is an
estimate: near-end speech during far-end speech (double talk) lowers it. WebRTC's gain control
lifts quiet audio most, residual echo included, so while the far end plays and the canceller
removes more than 6 dB of what the microphone hears (echo alone), the canceller's output is
sent without that gain (a ramp, not a switch).

Double talk: AEC3's suppressor gates the near end's speech while the far end plays, and neither
package lets it be tuned. A linear echo filter of our own (`transmitter.linear_echo`, a
frequency-domain Kalman filter that spans a 300 ms room after the delay hint) runs beside it;
its output goes through a mild residual echo suppressor driven by the filter's echo estimate (`transmitter.residual_echo`) and a third APM
instance with the same parts but the canceller; while both sides talk (`transmitter.double_talk`
decides) that path's output is sent instead of AEC3's, delayed as AEC3 is. While the far end
plays and both do not talk, the echo leak guard (`transmitter.echo_leak_guard`,
`FrontEndConfig.leak_guard`, on by default) sends that path's output instead of AEC3's in the
frames where it is the quieter: AEC3's suppressor lets bursts of a long room's echo through in
its first seconds, which the linear filter, spanning the room, has removed by then.

Alignment (`FrontEndConfig.align`, on by default): the linear filter's reference goes through
a queue, the delay hint less a lead at first, and one codec frame of it comes out per
microphone frame. An echo delay estimate of our own (`transmitter.echo_delay`: GCC-PHAT on 4
kHz signals, 5 times a second) watches what comes out against the microphone; when it is
stable and the echo is not where the filter's span expects it (LINEAR_LEAD_S in), the queue is
moved (silence put ahead, or what is queued dropped) and the filter starts over. Devices whose
reported latencies are wrong, a sound card buffer refilled after an underrun, capture that
lost audio: the reference is lined up again within about two seconds. Without it the hint
alone places it. AEC3 gets the reference as it comes (it finds its delay itself, up to about
500 ms); `aec3_aligned=True` gives it the aligned queue's instead, 10 ms before each 10 ms of
capture (off by default: with a hint too large, AEC3 starts with a reference behind the echo
and recovers slowly after the first re-alignment; docs/frontend.md).

`FrontEndConfig(linear=True)` also gives AEC3 the linear filter's output once the filter is
trusted (AEC3's own linear filter spans about 50 ms): on the benchmark long rooms converge
faster, but on real devices AEC3 then leaves more echo than on its own (docs/frontend.md: the
filter removes only about 15 dB there), so it is off by default.

Without the `livekit` package (the optional `frontend` extra) `make_front_end` returns a
`NullFrontEnd`, which passes audio through and says once why.
"""

from __future__ import annotations

import itertools
import logging
import math
import threading
import time
from collections import deque
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, field
from typing import Any, Protocol

import numpy as np

from transmitter.double_talk import DoubleTalkSwitch, ramped_mix, step_towards
from transmitter.echo_delay import EchoDelayEstimator
from transmitter.echo_leak_guard import EchoLeakGuard
from transmitter.linear_echo import LinearEchoFilter
from transmitter.residual_echo import ResidualEchoSuppressor

log = logging.getLogger(__name__)

APM_FRAME_S = 0.010  # WebRTC's APM takes exactly 10 ms per call
REFERENCE_ACTIVE_DBFS = -50.0  # a far-end frame at least this loud counts towards the ERLE estimate
ERLE_WINDOW_S = 1.0  # time constant of the ERLE estimate's smoothing
MAX_REFERENCE_S = 1.0  # reference queued beyond this (the capture side stalled) is dropped, oldest first
MAX_DELAY_MS = 500  # WebRTC's stream delay is clamped to [0, 500] ms
ECHO_ONLY_RATIO = 10 ** (-6 / 10)  # the canceller removing more than 6 dB: the microphone hears echo alone
GAIN_MIX_STEP = 0.25  # per 20 ms frame: 80 ms from the gain controller's output to the canceller's and back
# The linear echo filter ahead of AEC3, and the double-talk path after it.
LINEAR_SPAN_S = 0.32  # the linear filter's span after its bulk delay: the room (a short span converges faster)
LINEAR_LEAD_S = 0.04  # the span starts this long before the echo's direct path (the hint's at first, then the delay estimate's)
LINEAR_QUEUE_S = 1.5  # the linear filter's reference queue holds at most this (the bulk delay; the echo delay estimate reaches 1 s)
LINEAR_ALIGN_EARLY_S = 0.03  # the echo's estimated delay this far before the span's lead point: move the reference (10 ms margin left)
LINEAR_ALIGN_LATE_S = 0.02  # or this far after it (the room's tail would fall off the span's end)
LINEAR_FEED_ON_DB = 10.0  # AEC3 gets the linear filter's output once the filter removes this much of the echo alone
LINEAR_FEED_OFF_DB = 6.0  # and the microphone again when that falls below this (a moved echo path, a lost alignment)
AEC3_LATENCY_S = 0.008  # AEC3 delays its output by two 64-sample blocks at 16 kHz more than the APM without it (measured)


@dataclass(frozen=True)
class FrontEndConfig:
    """Which parts run. `delay_ms`: the playout-to-capture delay hint for the echo canceller
    (AEC3 estimates the delay itself too; the hint is where it starts)."""

    aec: bool = True
    agc: bool = True
    highpass: bool = True
    noise_suppression: bool = True
    delay_ms: int = 0
    linear: bool = False  # AEC3 gets the linear filter's output once it is trusted (with aec only; see docs/frontend.md)
    double_talk: bool = True  # while both talk, send the linear filter's output, not AEC3's (with aec only)
    align: bool = True  # the linear filter's reference lined up by an echo delay estimate (`transmitter.echo_delay`), not the hint alone
    aec3_aligned: bool = False  # AEC3's reference from the same aligned queue, paced by the capture (with align; see docs/frontend.md)
    leak_guard: bool = True  # while the far end plays, the quieter of AEC3's output and the linear path's (`transmitter.echo_leak_guard`; with double_talk)

    @property
    def any(self) -> bool:
        return self.aec or self.agc or self.highpass or self.noise_suppression

    def parts(self) -> list[str]:
        named = (("aec", self.aec), ("agc", self.agc), ("hpf", self.highpass), ("ns", self.noise_suppression))
        return [name for name, on in named if on]


@dataclass
class FrontEndStats:
    frames: int = 0  # 20 ms capture frames processed
    reference_frames: int = 0  # 10 ms far-end frames fed to the canceller
    reference_dropped_s: float = 0.0  # far-end audio dropped because the capture side fell behind
    cost_s: float = 0.0  # time spent in `process` (reference included)
    last_cost_ms: float = 0.0
    erle_db: float | None = None  # None until the far end has played for a while
    erle_frames: int = 0  # capture frames that counted towards it (far end active)
    gain_held_frames: int = 0  # frames of echo alone, sent without the gain controller's gain
    double_talk_frames: int = 0  # frames sent from the linear filter (both talking)
    leak_guard_frames: int = 0  # frames sent from the linear path because AEC3's output was louder (echo alone)
    linear_erle_db: float | None = None  # the linear filter's echo reduction while AEC3 hears echo alone
    echo_delay_ms: float | None = None  # the echo's last stable delay estimate behind the linear filter's reference
    realignments: int = 0  # the linear filter's reference moved to the delay estimate
    delay_estimator_cost_s: float = 0.0  # of `cost_s`: the delay estimator's

    @property
    def cost_ms_per_frame(self) -> float:
        return 1000 * self.cost_s / self.frames if self.frames else 0.0


class FrontEnd(Protocol):
    """What the call needs from a front end (a real one or the pass-through)."""

    active: bool
    reason: str  # why it is off (NullFrontEnd), "" when active
    config: FrontEndConfig
    stats: FrontEndStats

    def process(self, frame: np.ndarray) -> np.ndarray: ...

    def add_reference(self, block: np.ndarray) -> None: ...

    def set_delay_ms(self, delay_ms: float) -> None: ...

    def status_text(self) -> str: ...


class FrameAdapter:
    """A FIFO that takes blocks of any length and gives back whole frames of `frame` samples,
    in order, as a [k, frame] array (numpy slicing only). What is left over waits for more."""

    def __init__(self, frame: int, capacity: int | None = None) -> None:
        if frame <= 0:
            raise ValueError("frame must be positive")
        self.frame = frame
        self.capacity = capacity  # samples kept at most; older ones are dropped (and counted)
        self.dropped = 0
        self._buf = np.zeros(max(4 * frame, capacity or 0), np.float32)
        self._n = 0

    def __len__(self) -> int:
        return self._n

    def push(self, block: np.ndarray) -> None:
        block = np.asarray(block, np.float32).reshape(-1)
        if self.capacity is not None and self._n + block.size > self.capacity:
            excess = self._n + block.size - self.capacity
            cut = min(excess, self._n)
            self._buf[: self._n - cut] = self._buf[cut : self._n]
            self._n -= cut
            self.dropped += cut
            if block.size > self.capacity:
                self.dropped += block.size - self.capacity
                block = block[-self.capacity :]
        need = self._n + block.size
        if need > self._buf.size:
            grown = np.zeros(max(need, 2 * self._buf.size), np.float32)
            grown[: self._n] = self._buf[: self._n]
            self._buf = grown
        self._buf[self._n : need] = block
        self._n = need

    def prepend_zeros(self, count: int) -> None:
        """`count` samples of silence ahead of what is queued (they come out first): the queue's
        output delayed by `count` samples. Not beyond the capacity."""
        if self.capacity is not None:
            count = min(count, max(0, self.capacity - self._n))
        if count <= 0:
            return
        queued = self._buf[: self._n].copy()
        self._n = 0
        self.push(np.zeros(count, np.float32))
        self.push(queued)

    def take(self, count: int) -> np.ndarray:
        """Up to `count` of the oldest samples, removed from the queue (fewer when fewer are there)."""
        count = max(0, min(count, self._n))
        out = self._buf[:count].copy()
        self.drop(count)
        return out

    def drop(self, count: int) -> int:
        """Drop up to `count` of the oldest samples (the queue's output advanced); how many were."""
        count = max(0, min(count, self._n))
        self._buf[: self._n - count] = self._buf[count : self._n]
        self._n -= count
        return count

    def pop_frames(self, limit: int | None = None) -> np.ndarray:
        k = self._n // self.frame if limit is None else min(limit, self._n // self.frame)
        if k == 0:
            return np.zeros((0, self.frame), np.float32)
        used = k * self.frame
        out = self._buf[:used].reshape(k, self.frame).copy()
        self._buf[: self._n - used] = self._buf[used : self._n]
        self._n -= used
        return out


def split_frame(frame: np.ndarray, apm_frame: int) -> np.ndarray:
    """A codec frame as consecutive APM frames: [len // apm_frame, apm_frame] (a view)."""
    frame = np.asarray(frame, np.float32).reshape(-1)
    if frame.size % apm_frame:
        raise ValueError(f"a {frame.size}-sample frame is not a whole number of {apm_frame}-sample APM frames")
    return frame.reshape(-1, apm_frame)


def to_int16(audio: np.ndarray, out: np.ndarray | None = None) -> np.ndarray:
    scaled = np.clip(audio, -1.0, 32767 / 32768) * 32768.0
    if out is None:
        return np.rint(scaled).astype(np.int16)
    np.rint(scaled, out=scaled)
    out[...] = scaled
    return out


class NullFrontEnd:
    """The pass-through: used when the front end is off or cannot run (`reason` says why)."""

    active = False

    def __init__(self, reason: str = "off", config: FrontEndConfig | None = None) -> None:
        self.reason = reason
        self.config = config or FrontEndConfig(aec=False, agc=False, highpass=False, noise_suppression=False)
        self.stats = FrontEndStats()

    def process(self, frame: np.ndarray) -> np.ndarray:
        self.stats.frames += 1
        return frame

    def add_reference(self, block: np.ndarray) -> None:
        pass

    def set_delay_ms(self, delay_ms: float) -> None:
        pass

    def status_text(self) -> str:
        return "fe off"


class _Apm(Protocol):
    """The calls made on WebRTC's APM (livekit.rtc.AudioProcessingModule's shape), on int16 10 ms frames."""

    def process_stream(self, frame: Any) -> None: ...

    def process_reverse_stream(self, frame: Any) -> None: ...

    def set_stream_delay_ms(self, delay_ms: int) -> None: ...


class _LivekitFrames:
    """Reusable livekit AudioFrames over our own int16 buffers (no allocation per frame)."""

    def __init__(self, rtc: Any, sample_rate: int, apm_frame: int) -> None:
        self.buffers = [bytearray(2 * apm_frame) for _ in range(2)]
        self.frames = [rtc.AudioFrame(b, sample_rate, 1, apm_frame) for b in self.buffers]
        # The frame keeps our bytearray (livekit copies only read-only buffers): write and read
        # the samples through a numpy view of it.
        self.views = [np.frombuffer(f.data, np.int16) for f in self.frames]


class WebRtcFrontEnd:
    """WebRTC's APM (AEC3, AGC, high-pass, noise suppression) on 20 ms codec frames."""

    active = True
    reason = ""

    def __init__(
        self,
        config: FrontEndConfig,
        sample_rate: int = 16_000,
        hop: int = 320,
        apm_factory: Callable[..., _Apm] | None = None,
        frame_factory: Callable[[np.ndarray], Any] | None = None,
    ) -> None:
        """`apm_factory(echo_cancellation=, noise_suppression=, high_pass_filter=, auto_gain_control=)`
        and `frame_factory(int16 view)` replace livekit's (tests); by default livekit's are used."""
        if sample_rate not in (8_000, 16_000, 32_000, 48_000):
            raise ValueError(f"WebRTC's APM runs at 8, 16, 32 or 48 kHz, not {sample_rate} Hz")
        self.config = config
        self.sample_rate = sample_rate
        self.hop = hop
        self.apm_frame = round(sample_rate * APM_FRAME_S)
        if hop % self.apm_frame:
            raise ValueError(f"the codec frame ({hop} samples) must be a whole number of 10 ms APM frames")
        self.stats = FrontEndStats()
        self._lock = threading.Lock()
        self._pending: deque[np.ndarray] = deque()
        self._pending_samples = 0
        self._reference = FrameAdapter(self.apm_frame)
        self._delay_ms = int(min(MAX_DELAY_MS, max(0, config.delay_ms)))
        self._erle_in = self._erle_out = 0.0
        self._decay = math.exp(-hop / sample_rate / ERLE_WINDOW_S)
        self._active_power = 10 ** (REFERENCE_ACTIVE_DBFS / 10)
        self._ref_powers: deque[float] = deque(maxlen=MAX_DELAY_MS // 20 + 8)
        self._fast_in = self._fast_out = 0.0  # ~100 ms smoothed powers: is the canceller removing most of the input?
        self._fast_decay = math.exp(-hop / sample_rate / 0.1)
        self._gain_mix = 1.0  # 1: the gain controller's output; 0: the canceller's (echo alone)
        self.keep_cancelled = False  # True: `last_cancelled` holds the last frame after the canceller, before the gain (benchmarks)
        self.last_cancelled: np.ndarray | None = None
        if apm_factory is None or frame_factory is None:
            from livekit import rtc  # ImportError / OSError: make_front_end falls back

            apm_factory = apm_factory or rtc.AudioProcessingModule
            self._frames = _LivekitFrames(rtc, sample_rate, self.apm_frame)
            self._frame_for = {id(v): f for v, f in zip(self._frames.views, self._frames.frames)}
            views = self._frames.views
        else:
            views = [np.zeros(self.apm_frame, np.int16) for _ in range(2)]
            self._frame_for = {id(v): frame_factory(v) for v in views}
        self._cap_view, self._ref_view = views
        # Stage 1 cancels, filters, denoises; stage 2 (when on) controls the gain after it, so
        # that the ERLE estimate compares the microphone with the canceller's output alone.
        first = config.aec or config.highpass or config.noise_suppression
        self._cancel = (
            apm_factory(echo_cancellation=config.aec, noise_suppression=config.noise_suppression, high_pass_filter=config.highpass, auto_gain_control=False)
            if first
            else None
        )
        self._gain = apm_factory(echo_cancellation=False, noise_suppression=False, high_pass_filter=False, auto_gain_control=True) if config.agc else None
        # A linear filter on the microphone (ahead of AEC3 and, for double talk, before the
        # residual echo suppressor and the same APM parts but the echo canceller, whose
        # suppressor is what gates the near end), delayed as AEC3 is.
        self._linear: LinearEchoFilter | None = None
        self._switch: DoubleTalkSwitch | None = None
        self._bypass: _Apm | None = None
        if config.aec and (config.linear or config.double_talk):
            self._linear = LinearEchoFilter(hop, math.ceil(LINEAR_SPAN_S * sample_rate / hop))
            self._linear_bulk_delay()  # the linear filter's reference queue, the bulk delay in it
            self._switch = DoubleTalkSwitch()  # it measures the filter while AEC3 hears echo alone
        self._delay_estimator = EchoDelayEstimator(hop, sample_rate) if self._linear is not None and config.align else None
        self._played = np.zeros(hop, np.float32)  # the aligned reference's block for the current frame
        self._aec3_aligned = self._delay_estimator is not None and config.aec3_aligned
        self._feeding_linear = False  # AEC3 gets the linear filter's output (once it is trusted)
        self._guard: EchoLeakGuard | None = None  # the quieter of AEC3's output and the linear path's, echo alone
        if self._linear is not None and config.double_talk:
            self._suppressor = ResidualEchoSuppressor(hop)
            self._guard = EchoLeakGuard(sample_rate) if config.leak_guard else None
            if config.highpass or config.noise_suppression:
                self._bypass = apm_factory(
                    echo_cancellation=False, noise_suppression=config.noise_suppression, high_pass_filter=config.highpass, auto_gain_control=False
                )
            lined_up = round(AEC3_LATENCY_S * sample_rate) - self._suppressor.latency  # the suppressor's own latency counts
            self._bypass_delay = np.zeros(max(0, lined_up) + hop, np.float32)

    # ---- the far end ---------------------------------------------------------------------------
    def add_reference(self, block: np.ndarray) -> None:
        """What the speaker is playing now (any length; any thread: PortAudio's callback calls it)."""
        if not self.config.aec:
            return
        block = np.array(block, np.float32, copy=True).reshape(-1)
        limit = int(MAX_REFERENCE_S * self.sample_rate)
        with self._lock:
            self._pending.append(block)
            self._pending_samples += block.size
            while self._pending_samples > limit and len(self._pending) > 1:
                old = self._pending.popleft()
                self._pending_samples -= old.size
                self.stats.reference_dropped_s += old.size / self.sample_rate

    def set_delay_ms(self, delay_ms: float) -> None:
        """The delay between a far-end block's hand-over (`add_reference`) and the microphone
        frame that holds its echo reaching `process` (WebRTC's stream delay)."""
        self._delay_ms = int(min(MAX_DELAY_MS, max(0, round(delay_ms))))
        if self._linear is not None and self.stats.frames == 0:
            self._linear_bulk_delay()

    def _linear_bulk_delay(self) -> None:
        """Delay the linear filter's reference by the delay hint less a lead, before the first
        frame, so that its span covers the room, not the devices' delay."""
        self._linear_reference = FrameAdapter(self.hop, capacity=int(LINEAR_QUEUE_S * self.sample_rate))
        bulk_s = max(0.0, self._delay_ms / 1000 - LINEAR_LEAD_S)
        self._linear_reference.push(np.zeros(round(bulk_s * self.sample_rate), np.float32))
        self._linear_debt = 0  # reference samples replaced by silence (it came late), to drop when it comes

    @property
    def delay_ms(self) -> int:
        return self._delay_ms

    # ---- the microphone ------------------------------------------------------------------------
    def process(self, frame: np.ndarray) -> np.ndarray:
        """One codec frame (float32 in [-1, 1]) in, the processed frame out (same length)."""
        started = time.perf_counter()
        parts = split_frame(frame, self.apm_frame)
        ref_power = self._feed_reference()
        out = np.empty(parts.shape, np.float32)
        cap, cap_frame = self._cap_view, self._frame_for[id(self._cap_view)]
        ref, ref_frame = self._ref_view, self._frame_for[id(self._ref_view)]
        linear = self._linear_filter(parts) if self._linear is not None else None
        aligned = self._aec3_aligned  # AEC3's reference: the aligned queue's, 10 ms before each 10 ms of capture
        played = self._played.reshape(parts.shape)
        if aligned:
            ref_power = float(np.mean(np.square(played, dtype=np.float64)))
        to_cancel = linear.reshape(parts.shape) if linear is not None and self._feeding_linear else parts
        stream_delay = round(1000 * LINEAR_LEAD_S) if aligned else self._delay_ms
        for i, part in enumerate(to_cancel):  # 2 APM frames per 20 ms codec frame
            to_int16(part, cap)
            if self._cancel is not None:
                if aligned:
                    to_int16(played[i], ref)
                    self._cancel.process_reverse_stream(ref_frame)
                    self.stats.reference_frames += 1
                if self.config.aec:
                    self._cancel.set_stream_delay_ms(stream_delay)  # WebRTC wants it before every frame
                self._cancel.process_stream(cap_frame)
            out[i] = cap
        cancelled_power = float(np.mean(np.square(out, dtype=np.float64))) / 32768.0**2
        in_power = float(np.mean(np.square(parts, dtype=np.float64)))
        # The far end counts as playing in this frame's echo if it did within the delay + a tail.
        self._ref_powers.append(ref_power)
        lookback = min(len(self._ref_powers), stream_delay // 20 + 8)
        far_active = self.config.aec and max(itertools.islice(reversed(self._ref_powers), lookback)) >= self._active_power
        if self._switch is not None and linear is not None:
            out, cancelled_power = self._double_talk(linear, out, in_power, cancelled_power, far_active)
            # Hysteresis: AEC3's input changes only on a clear verdict (each change is an echo
            # path change to it), and never to a filter that has not been measured working.
            trust = self._switch.linear_erle_db
            self._feeding_linear = self.config.linear and (trust >= LINEAR_FEED_ON_DB or (self._feeding_linear and trust >= LINEAR_FEED_OFF_DB))
        if self.keep_cancelled:
            self.last_cancelled = out.reshape(-1) * (1 / 32768.0)
        self._fast_in = self._fast_decay * self._fast_in + (1 - self._fast_decay) * in_power
        self._fast_out = self._fast_decay * self._fast_out + (1 - self._fast_decay) * cancelled_power
        if self._gain is not None:
            cancelled = out.copy()
            for i in range(parts.shape[0]):
                to_int16(out[i] / 32768.0, cap)
                self._gain.process_stream(cap_frame)
                out[i] = cap
            # Gain control lifts quiet audio most, residual echo included (+15 dB measured when
            # the far end talks alone). While the canceller removes most of what the microphone
            # hears (echo alone), its output goes out without that gain; the mix moves by at most
            # a quarter per 20 ms frame, a ramp within each frame (no clicks).
            echo_only = far_active and self._fast_out < self._fast_in * ECHO_ONLY_RATIO
            target = 0.0 if echo_only else 1.0
            mix = step_towards(self._gain_mix, target, GAIN_MIX_STEP)
            if not mix == self._gain_mix == 1.0:  # else the gain controller's output as it is
                out = ramped_mix(out, cancelled, self._gain_mix, mix)
            self._gain_mix = mix
            self.stats.gain_held_frames += int(echo_only)
        out *= 1 / 32768.0
        if far_active:
            self._erle_in = self._decay * self._erle_in + in_power
            self._erle_out = self._decay * self._erle_out + cancelled_power
            self.stats.erle_frames += 1
            if self.stats.erle_frames >= 10:  # 200 ms of far-end audio
                self.stats.erle_db = 10 * math.log10((self._erle_in + 1e-20) / (self._erle_out + 1e-20))
        cost = time.perf_counter() - started
        self.stats.frames += 1
        self.stats.cost_s += cost
        self.stats.last_cost_ms = 1000 * cost
        return out.reshape(-1)

    def _linear_filter(self, parts: np.ndarray) -> np.ndarray:
        """The microphone's codec frame less the linear filter's echo estimate (float, flat)."""
        assert self._linear is not None
        played = self._played  # reused frame to frame: the filter and the estimator copy what they keep
        queued = self._linear_reference.take(self.hop)
        played[: queued.size] = queued
        # What is late is replaced by silence, and dropped when it comes (the alignment kept).
        played[queued.size :] = 0.0
        self._linear_debt += self.hop - queued.size
        restarts = self._linear.stats.restarts
        mic = parts.reshape(-1)
        linear = self._linear.process(played, mic)
        if self._linear.stats.restarts != restarts and self._switch is not None:
            self._switch.distrust()  # AEC3 gets the microphone again at once, the double-talk path waits
            self._feeding_linear = False
        if self._delay_estimator is not None:
            spent = self._delay_estimator.stats.cost_s
            lag = self._delay_estimator.push(played, mic)
            self.stats.delay_estimator_cost_s += self._delay_estimator.stats.cost_s - spent
            if lag is not None:
                self._realign(lag)
        return linear

    def _realign(self, lag: int) -> None:
        """The echo comes `lag` samples after the linear filter's reference (a stable estimate):
        if that is far from where the filter's span expects it (LINEAR_LEAD_S in), move the
        reference so that it is there, and let the filter start over (its weights and history
        no longer line up); the double-talk path and AEC3's feed wait until it is trusted again."""
        assert self._linear is not None and self._delay_estimator is not None
        self.stats.echo_delay_ms = 1000 * lag / self.sample_rate
        target = round(LINEAR_LEAD_S * self.sample_rate)
        if target - LINEAR_ALIGN_EARLY_S * self.sample_rate <= lag <= target + LINEAR_ALIGN_LATE_S * self.sample_rate:
            return
        shift = lag - target
        if shift > 0:
            self._linear_reference.prepend_zeros(shift)
        elif self._linear_reference.drop(-shift) == 0:
            # Only what is queued can be dropped: the echo comes sooner after the speaker's
            # hand-over than the lead (a reference cannot be used before it is played). Nothing
            # moved: the filter keeps what it learnt.
            return
        self._linear.realign()
        self._delay_estimator.reset()
        if self._switch is not None:
            self._switch.distrust()
        self._feeding_linear = False
        self.stats.realignments += 1
        self.stats.echo_delay_ms = 1000 * target / self.sample_rate

    def _double_talk(self, linear: np.ndarray, aec3_out: np.ndarray, in_power: float, aec3_power: float, far_active: bool) -> tuple[np.ndarray, float]:
        """AEC3's output, or while both talk (`DoubleTalkSwitch`) the linear filter's after the
        residual echo suppressor and the APM without the echo canceller, delayed as AEC3 is,
        ramped; the chosen output and its power."""
        assert self._linear is not None and self._switch is not None
        hop = self.hop
        linear_power = float(np.mean(np.square(linear, dtype=np.float64)))
        both = self._switch.update(in_power, linear_power, aec3_power, far_active)
        if self._switch.linear_erle_db:
            self.stats.linear_erle_db = self._switch.linear_erle_db
        if not self.config.double_talk:
            return aec3_out, aec3_power
        suppressed = self._suppressor.process(linear, self._linear.last_echo, self._switch.leak)
        if self._bypass is not None:
            cap, cap_frame = self._cap_view, self._frame_for[id(self._cap_view)]
            bypassed: np.ndarray = np.empty(aec3_out.shape, np.float32)
            for i, part in enumerate(suppressed.reshape(aec3_out.shape)):
                to_int16(part, cap)
                self._bypass.process_stream(cap_frame)
                bypassed[i] = cap
        else:
            bypassed = suppressed * 32768.0
        delay = self._bypass_delay
        delay[:-hop] = delay[hop:]
        delay[-hop:] = bypassed.reshape(-1)
        self.stats.double_talk_frames += int(both)
        lined_up = delay[:hop].reshape(aec3_out.shape)
        mixed = self._switch.mix(aec3_out, lined_up)
        out = aec3_out if mixed is None else mixed
        if self._guard is not None:
            # Echo alone (nobody else talks): AEC3's bursts of echo do not go out when the linear path removed more.
            out = self._guard.choose(out, lined_up, far_active and not both)
            self.stats.leak_guard_frames = self._guard.chosen_frames
        if out is aec3_out:
            return aec3_out, aec3_power
        return out, float(np.mean(np.square(out, dtype=np.float64))) / 32768.0**2

    def _feed_reference(self) -> float:
        """Hand what the speaker played since the last frame to the canceller; its mean power."""
        if not self.config.aec or self._cancel is None:
            return 0.0
        with self._lock:
            blocks = list(self._pending)
            self._pending.clear()
            self._pending_samples = 0
        for block in blocks:
            self._reference.push(block)
        frames = self._reference.pop_frames()
        if frames.shape[0] == 0:
            return 0.0
        ref, ref_frame = self._ref_view, self._frame_for[id(self._ref_view)]
        if self._linear is not None:
            if self.stats.frames == 0:
                # What the speaker played before the microphone's first frame is older than
                # anything the filter spans (the bulk delay is queued already): it would
                # misalign it for good. AEC3 finds its own delay; it gets all of it (unless it is
                # fed from the same aligned queue).
                self._linear_reference.push(frames.reshape(-1)[-self.hop :])
            else:
                self._linear_reference.push(frames)
            if self._linear_debt:
                self._linear_debt -= self._linear_reference.drop(self._linear_debt)
        if not self._aec3_aligned:  # else AEC3 gets the aligned queue's, paced by the capture (`process`)
            for part in frames:
                to_int16(part, ref)
                self._cancel.process_reverse_stream(ref_frame)
            self.stats.reference_frames += frames.shape[0]
        return float(np.mean(np.square(frames, dtype=np.float64)))

    def status_text(self) -> str:
        erle = f"{self.stats.erle_db:3.0f} dB" if self.stats.erle_db is not None else "  - dB"
        aec = f"erle {erle} " if self.config.aec else ""
        return f"fe {aec}{self.stats.cost_ms_per_frame:.2f} ms"


_said_why: set[str] = set()


def make_front_end(config: FrontEndConfig, sample_rate: int = 16_000, hop: int = 320, say: Callable[[str], None] | None = None) -> FrontEnd:
    """The WebRTC front end, or the pass-through when the config turns every part off or
    `livekit` cannot load (said once per process, through `say`, or a log warning)."""
    if not config.any:
        return NullFrontEnd("every part turned off", config)
    try:
        return WebRtcFrontEnd(config, sample_rate, hop)
    except (ImportError, OSError) as exc:
        reason = (
            f"audio front end off (no echo cancellation or gain control): the `livekit` package is missing or "
            f"does not load ({type(exc).__name__}: {exc}); pip install 'ssvoip[frontend]'"
        )
        if reason not in _said_why:
            _said_why.add(reason)
            (say or log.warning)(reason)
        return NullFrontEnd(reason, config)


# ---- in a call: a source that applies the front end, a hook on the speaker ----------------------
class FrontEndSource:
    """A source whose frames pass through a front end. Everything else (capture_start,
    start_at, ...) is the wrapped source's."""

    def __init__(self, source: Any, front_end: FrontEnd, delay_ms: Callable[[], float | None] | None = None) -> None:
        self.source = source
        self.front_end = front_end
        self._delay_ms = delay_ms  # asked once the first frame has come (the devices are open then)

    @property
    def start_at(self) -> float | None:
        return self.source.start_at

    @start_at.setter
    def start_at(self, value: float | None) -> None:
        self.source.start_at = value

    def __getattr__(self, name: str) -> Any:  # only for what this class does not have
        return getattr(self.source, name)

    async def __aiter__(self) -> AsyncIterator[np.ndarray]:
        first = True
        async for frame in self.source:
            if first and self._delay_ms is not None:
                first = False
                delay = self._delay_ms()
                if delay is not None:
                    self.front_end.set_delay_ms(delay)
                log.info(
                    "audio front end: %s, echo delay hint %s ms (from the devices' latencies)",
                    "+".join(self.front_end.config.parts()),
                    "unknown" if delay is None else f"{delay:.0f}",
                )
            yield self.front_end.process(frame)


def device_delay_ms(source: Any, sink: Any, hop_s: float) -> float | None:
    """Playout-to-capture delay from what the devices report: the speaker's output latency
    (callback to DAC) + the microphone's input latency (ADC to callback) + one capture block
    (a block is handed over when its last sample is in). The reference is taken as the speaker
    plays it, so the receiver's playout buffer before the sink is already behind it. None when
    either device has not reported (not open)."""
    out_s = getattr(sink, "latency_s", None)
    in_s = getattr(source, "latency_s", None)
    if out_s is None or in_s is None:
        return None
    return 1000 * (float(out_s) + float(in_s) + hop_s)


def find_front_end(source: Any) -> FrontEnd | None:
    """The front end inside a (possibly wrapped) source, for the status line."""
    for _ in range(4):
        if source is None:
            return None
        front_end = source.__dict__.get("front_end") if hasattr(source, "__dict__") else None
        if front_end is not None:
            return front_end
        source = source.__dict__.get("source") if hasattr(source, "__dict__") else None
    return None


def add_arguments(parser: Any) -> None:
    """`ssvoip call/listen` flags: the front end runs when the input is the microphone and the
    output the speaker; these turn it, or parts of it, off."""
    g = parser.add_argument_group("audio front end (microphone + speaker only)")
    g.add_argument("--no-frontend", action="store_true", help="no echo cancellation, gain control, high-pass or noise suppression")
    g.add_argument("--no-aec", action="store_true", help="no echo cancellation")
    g.add_argument("--no-agc", action="store_true", help="no automatic gain control")
    g.add_argument("--no-highpass", action="store_true", help="no high-pass filter")
    g.add_argument("--no-ns", action="store_true", help="no noise suppression")


def config_from_args(args: Any) -> FrontEndConfig | None:
    """The front end's parts from the command line; None when it does not run (files, or --no-frontend)."""
    if getattr(args, "no_frontend", False) or args.input != "mic" or args.output != "speaker":
        return None
    return FrontEndConfig(aec=not args.no_aec, agc=not args.no_agc, highpass=not args.no_highpass, noise_suppression=not args.no_ns)


@dataclass
class CallFrontEnds:
    """One front end per call, shared by that call's speaker sink (the far-end reference) and
    microphone source. `config` None: pass sinks and sources through untouched."""

    config: FrontEndConfig | None
    sample_rate: int = 16_000
    hop: int = 320
    say: Callable[[str], None] | None = None
    current: FrontEnd | None = field(default=None, init=False)
    _sink: Any = field(default=None, init=False)

    def sink(self, sink: Any) -> Any:
        """A new call's speaker: a new front end, fed what this sink plays."""
        if self.config is None:
            return sink
        self.current = make_front_end(self.config, self.sample_rate, self.hop, self.say)
        self._sink = sink
        if self.current.active and hasattr(sink, "on_played"):
            sink.on_played = self.current.add_reference
        return sink

    def source(self, source: Any) -> Any:
        if self.config is None:
            return source
        if self.current is None:
            self.current = make_front_end(self.config, self.sample_rate, self.hop, self.say)
        if not self.current.active:
            return source
        sink, hop_s = self._sink, self.hop / self.sample_rate
        return FrontEndSource(source, self.current, lambda: device_delay_ms(source, sink, hop_s))
