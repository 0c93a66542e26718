"""The audio front end: its 10 ms / 20 ms frame adapter, flags, the fallback without livekit,
and a real ERLE on a short synthetic echo (livekit's WebRTC APM; skipped without it)."""

from __future__ import annotations

import builtins
import importlib.util

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from transmitter import frontend
from transmitter.frontend import (
    CallFrontEnds,
    FrameAdapter,
    FrontEndConfig,
    FrontEndSource,
    NullFrontEnd,
    WebRtcFrontEnd,
    config_from_args,
    device_delay_ms,
    find_front_end,
    make_front_end,
    split_frame,
)

HAS_LIVEKIT = importlib.util.find_spec("livekit") is not None


class FakeApm:
    """Identity APM that records what it was asked to do."""

    made: list["FakeApm"] = []

    def __init__(self, **flags) -> None:
        self.flags = flags
        self.captured: list[np.ndarray] = []
        self.reverse = 0
        self.delays: list[int] = []
        FakeApm.made.append(self)

    def process_stream(self, frame) -> None:
        self.captured.append(frame.copy())

    def process_reverse_stream(self, frame) -> None:
        self.reverse += 1

    def set_stream_delay_ms(self, delay_ms: int) -> None:
        self.delays.append(delay_ms)


def fake_front_end(config: FrontEndConfig) -> WebRtcFrontEnd:
    FakeApm.made = []
    return WebRtcFrontEnd(config, 16_000, 320, apm_factory=FakeApm, frame_factory=lambda view: view)


@settings(max_examples=60, deadline=None)
@given(st.lists(st.integers(0, 700), min_size=1, max_size=30))
def test_frame_adapter_keeps_every_sample_in_order(sizes):
    adapter = FrameAdapter(160)
    data = np.arange(sum(sizes), dtype=np.float32)
    out, at = [], 0
    for n in sizes:
        adapter.push(data[at : at + n])
        at += n
        out.append(adapter.pop_frames())
    frames = np.concatenate(out)
    assert frames.shape == (data.size // 160, 160)
    np.testing.assert_array_equal(frames.reshape(-1), data[: frames.size])  # order kept, nothing lost
    assert len(adapter) == data.size % 160


def test_frame_adapter_capacity_drops_oldest():
    adapter = FrameAdapter(160, capacity=320)
    adapter.push(np.arange(500, dtype=np.float32))
    assert adapter.dropped == 180
    np.testing.assert_array_equal(adapter.pop_frames().reshape(-1), np.arange(180, 500, dtype=np.float32))


def test_split_frame_needs_whole_apm_frames():
    assert split_frame(np.zeros(320, np.float32), 160).shape == (2, 160)
    with pytest.raises(ValueError):
        split_frame(np.zeros(300, np.float32), 160)


@settings(max_examples=25, deadline=None)
@given(st.integers(1, 12), st.integers(0, 2**31 - 1))
def test_codec_frames_in_equal_frames_out(count, seed):
    """Each 20 ms frame goes to the APM as two 10 ms frames and comes back whole, in order."""
    fe = fake_front_end(FrontEndConfig(aec=True, agc=False, highpass=True, noise_suppression=False))
    rng = np.random.default_rng(seed)
    frames = [(rng.integers(-20000, 20000, 320) / 32768).astype(np.float32) for _ in range(count)]
    out = [fe.process(f) for f in frames]
    assert len(out) == count and all(o.shape == (320,) for o in out)
    for f, o in zip(frames, out):
        np.testing.assert_allclose(o, f, atol=1 / 32768)
    apm, bypass = FakeApm.made  # the canceller; the same parts but the canceller, for double talk
    assert not bypass.flags["echo_cancellation"] and bypass.flags["high_pass_filter"]
    assert len(apm.captured) == 2 * count
    np.testing.assert_allclose(np.concatenate(apm.captured) / 32768, np.concatenate(frames), atol=1 / 32768)
    assert fe.stats.frames == count and fe.stats.cost_ms_per_frame > 0


def test_flags_pick_the_apm_parts():
    fe = fake_front_end(FrontEndConfig(aec=True, agc=True, highpass=False, noise_suppression=False, delay_ms=70, align=False))
    cancel, gain = FakeApm.made
    assert cancel.flags == {"echo_cancellation": True, "noise_suppression": False, "high_pass_filter": False, "auto_gain_control": False}
    assert gain.flags["auto_gain_control"] and not gain.flags["echo_cancellation"]
    fe.add_reference(np.full(500, 0.1, np.float32))  # any block length
    fe.process(np.zeros(320, np.float32))
    assert cancel.reverse == 3 and cancel.delays == [70, 70]  # not aligned: what came, the hint
    fe = fake_front_end(FrontEndConfig(aec=False, agc=True, highpass=False, noise_suppression=False))
    assert len(FakeApm.made) == 1  # gain control only
    fe.add_reference(np.ones(320, np.float32))
    fe.process(np.zeros(320, np.float32))
    assert FakeApm.made[0].reverse == 0
    assert isinstance(make_front_end(FrontEndConfig(False, False, False, False)), NullFrontEnd)


class Args:
    def __init__(self, **kw) -> None:
        self.input, self.output = "mic", "speaker"
        self.no_frontend = self.no_aec = self.no_agc = self.no_highpass = self.no_ns = False
        self.__dict__.update(kw)


def test_config_from_the_command_line():
    assert config_from_args(Args()) == FrontEndConfig()
    assert config_from_args(Args(no_aec=True, no_ns=True)) == FrontEndConfig(aec=False, noise_suppression=False)
    assert config_from_args(Args(input="a.wav")) is None  # files: off
    assert config_from_args(Args(output="out.wav")) is None
    assert config_from_args(Args(no_frontend=True)) is None


def test_fallback_without_livekit_says_why_once(monkeypatch):
    real_import = builtins.__import__

    def no_livekit(name, *args, **kwargs):
        if name == "livekit" or name.startswith("livekit."):
            raise ImportError("No module named 'livekit'")
        return real_import(name, *args, **kwargs)

    monkeypatch.setattr(builtins, "__import__", no_livekit)
    monkeypatch.setattr(frontend, "_said_why", set())
    said: list[str] = []
    plan = CallFrontEnds(FrontEndConfig(), say=said.append)
    for _ in range(3):  # three calls on a listener
        sink = type("Sink", (), {"on_played": None})()
        assert plan.sink(sink) is sink and sink.on_played is None
        source = object()
        assert plan.source(source) is source  # the call goes on, unprocessed
        assert isinstance(plan.current, NullFrontEnd) and "livekit" in plan.current.reason
    assert len(said) == 1 and "frontend" in said[0]
    frame = np.ones(320, np.float32)
    assert plan.current.process(frame) is frame


def test_files_pass_through_untouched():
    plan = CallFrontEnds(None)
    sink, source = object(), object()
    assert plan.sink(sink) is sink and plan.source(source) is source


def test_delay_from_the_devices_reported_latencies():
    mic = type("Mic", (), {"latency_s": 0.030})()
    speaker = type("Speaker", (), {"latency_s": 0.045})()
    assert device_delay_ms(mic, speaker, 0.02) == pytest.approx(95.0)
    assert device_delay_ms(object(), speaker, 0.02) is None


async def test_source_wrapper_applies_the_front_end_and_sets_the_delay():
    class Mic:
        start_at = None
        latency_s = 0.01

        def capture_start(self, t: float) -> float:
            return t - 0.02

        async def __aiter__(self):
            for _ in range(3):
                yield np.full(320, 0.25, np.float32)

    fe = fake_front_end(FrontEndConfig(agc=False, noise_suppression=False))
    speaker = type("Speaker", (), {"latency_s": 0.02})()
    source = FrontEndSource(Mic(), fe, lambda: device_delay_ms(mic, speaker, 0.02))
    mic = source.source
    out = [f async for f in source]
    assert len(out) == 3 and fe.stats.frames == 3 and fe.delay_ms == 50
    assert source.capture_start(1.0) == pytest.approx(0.98)
    source.start_at = 5.0
    assert mic.start_at == 5.0
    wrapped = type("Continuing", (), {})()
    wrapped.source = source
    assert find_front_end(wrapped) is fe


def _echo_scene(seconds: float, seed: int = 0):
    """Speech-like far end (noise bursts under a syllable envelope), a 100 ms room, 40 ms delay."""
    rng = np.random.default_rng(seed)
    n = int(seconds * 16_000) // 320 * 320
    t = np.arange(n) / 16_000
    envelope = np.clip(np.sin(2 * np.pi * 3.0 * t), 0, None) ** 2 * (0.6 + 0.4 * np.sin(2 * np.pi * 0.37 * t))
    from scipy.signal import lfilter

    far = lfilter([1.0], [1.0, -0.9], rng.standard_normal(n)) * envelope
    far = (0.3 * far / np.abs(far).max()).astype(np.float32)
    room = rng.standard_normal(1600) * np.exp(-6.9 * np.arange(1600) / 1600)
    room[0] = 3.0
    path = np.concatenate([np.zeros(640), room / np.sqrt(np.sum(room**2))])
    echo = np.convolve(np.tanh(far), path)[:n] * 0.5
    mic = (echo + 1e-4 * rng.standard_normal(n)).astype(np.float32)
    return far, mic


@pytest.mark.skipif(not HAS_LIVEKIT, reason="livekit (the `frontend` extra) is not installed")
def test_real_erle_on_a_synthetic_echo():
    far, mic = _echo_scene(6.0)
    fe = WebRtcFrontEnd(FrontEndConfig(agc=False, noise_suppression=False, delay_ms=40))
    fe.keep_cancelled = True
    out = np.empty_like(mic)
    for i in range(0, mic.size, 320):
        fe.add_reference(far[i : i + 320])
        out[i : i + 320] = fe.process(mic[i : i + 320])
    tail = slice(mic.size - 3 * 16_000, mic.size)  # after 3 s
    erle = 10 * np.log10(np.mean(mic[tail] ** 2) / np.mean(out[tail] ** 2))
    assert erle > 20, erle
    assert fe.stats.erle_db is not None and fe.stats.erle_db > 15
    assert "erle" in fe.status_text()


def test_gain_is_held_back_while_only_echo_comes():
    """The canceller (here: -20 dB) removing most of the input while the far end plays: its
    output goes out without the gain controller's gain (here: x2); otherwise with it."""

    class Scale(FakeApm):
        def process_stream(self, frame) -> None:
            factor = 2.0 if self.flags["auto_gain_control"] else 0.1
            frame[...] = np.rint(frame * factor).astype(np.int16)

    config = FrontEndConfig(agc=True, noise_suppression=False, linear=False, double_talk=False)  # the fake canceller alone
    fe = WebRtcFrontEnd(config, apm_factory=Scale, frame_factory=lambda v: v)
    frame = np.full(320, 0.1, np.float32)
    near_alone = [fe.process(frame) for _ in range(10)]
    np.testing.assert_allclose(near_alone[-1], 0.02, atol=1e-3)  # 0.1 x 0.1 x 2
    for _ in range(20):
        fe.add_reference(np.full(320, 0.2, np.float32))
        out = fe.process(frame)
    np.testing.assert_allclose(out, 0.01, atol=1e-3)  # 0.1 x 0.1: no gain on echo alone
    assert fe.stats.gain_held_frames > 0 and fe.stats.erle_db == pytest.approx(20, abs=0.5)


def test_double_talk_sends_the_linear_filter_not_the_gated_near_end():
    """A fake AEC3 that removes the echo exactly but halves the near end (its suppressor gating
    it while both talk): echo alone goes out as AEC3's output; when the near end talks too, the
    linear filter's output (through the APM without the canceller) goes out instead, whole."""
    rng = np.random.default_rng(3)
    n = 16_000 * 3 // 320 * 320
    far = (0.1 * rng.standard_normal(n)).astype(np.float32)
    echo = np.concatenate([np.zeros(480, np.float32), 0.5 * far[:-480]])  # 30 ms, -6 dB
    near = np.zeros(n, np.float32)
    near[2 * 16_000 :] = (0.05 * rng.standard_normal(n - 2 * 16_000)).astype(np.float32)  # talks from 2 s on
    pending: list[np.ndarray] = []

    class Aec3(FakeApm):
        def process_stream(self, frame) -> None:
            if self.flags["echo_cancellation"]:
                frame[...] = np.rint(pending.pop(0) * 32768 * 0.5).astype(np.int16)  # the near end, halved

    fe = WebRtcFrontEnd(FrontEndConfig(agc=False, noise_suppression=False, delay_ms=30), apm_factory=Aec3, frame_factory=lambda v: v)
    out = np.empty(n, np.float32)
    for i in range(0, n, 320):
        pending.extend(np.split(near[i : i + 320], 2))
        fe.add_reference(far[i : i + 320])
        out[i : i + 320] = fe.process(echo[i : i + 320] + near[i : i + 320])
        if i + 320 == 2 * 16_000:
            assert fe.stats.double_talk_frames == 0  # echo alone: AEC3's output
            assert fe.stats.linear_erle_db is not None and fe.stats.linear_erle_db > 10
    assert fe.stats.double_talk_frames > 0.8 * 50  # most of the last second
    tail = slice(n - 16_000 // 2, n)
    kept = 10 * np.log10(np.mean(out[tail] ** 2) / np.mean(near[tail] ** 2))
    assert kept > -1.5, kept  # the near end whole (AEC3's halving would be -6 dB), the echo mostly gone


def test_double_talk_switch_off_and_without_the_canceller():
    fe = fake_front_end(FrontEndConfig(agc=False, double_talk=False))
    assert len(FakeApm.made) == 1 and fe.stats.double_talk_frames == 0
    fake_front_end(FrontEndConfig(aec=False, agc=False))
    assert len(FakeApm.made) == 1  # no canceller: no linear filter, no bypass APM


def test_aec3_gets_the_linear_filters_output_once_trusted():
    """`linear=True`: once the linear filter has been measured removing the echo (while a fake
    AEC3 that removes it all says the echo is alone), what AEC3 is given falls well below the
    microphone; by default (`linear=False`) AEC3 gets the microphone."""

    class Aec3(FakeApm):
        def process_stream(self, frame) -> None:
            super().process_stream(frame)
            if self.flags["echo_cancellation"]:
                frame[...] = 0

    rng = np.random.default_rng(5)
    n = 16_000 * 3 // 320 * 320
    far = (0.1 * rng.standard_normal(n)).astype(np.float32)
    echo = np.concatenate([np.zeros(480, np.float32), 0.5 * far[:-480]])  # 30 ms, -6 dB
    for linear, expected in ((True, -15.0), (False, 0.0)):
        FakeApm.made = []
        config = FrontEndConfig(agc=False, noise_suppression=False, highpass=False, delay_ms=30, linear=linear, double_talk=False)
        fe = WebRtcFrontEnd(config, 16_000, 320, apm_factory=Aec3, frame_factory=lambda view: view)
        for i in range(0, n, 320):
            fe.add_reference(far[i : i + 320])
            fe.process(echo[i : i + 320])
        given = np.concatenate(FakeApm.made[0].captured[-50:]).astype(np.float64) / 32768.0  # the last second
        reduction = 10 * np.log10(np.mean(given**2) / np.mean(echo[-16_000:].astype(np.float64) ** 2))
        assert (reduction < expected) if linear else abs(reduction) < 0.5, reduction


def test_aec3_gets_the_aligned_reference_paced_by_the_capture():
    """`aec3_aligned`: AEC3's reference comes from the same delay-aligned queue as the linear
    filter's, one 10 ms frame before each 10 ms of capture, however it arrived; the stream
    delay it is told is the span's lead, not the hint. By default it gets what came."""
    for aec3_aligned, reverse, delays in ((True, 6, {round(1000 * frontend.LINEAR_LEAD_S)}), (False, 9, {70})):
        fe = fake_front_end(FrontEndConfig(agc=False, noise_suppression=False, delay_ms=70, aec3_aligned=aec3_aligned))
        cancel = FakeApm.made[0]
        fe.add_reference(np.full(1500, 0.1, np.float32))  # a burst
        for _ in range(3):
            fe.process(np.zeros(320, np.float32))
        assert cancel.reverse == reverse and set(cancel.delays) == delays


class _EchoGone(FakeApm):
    """A fake AEC3 that removes everything (so that the linear filter is measured on echo alone)."""

    def process_stream(self, frame) -> None:
        super().process_stream(frame)
        if self.flags["echo_cancellation"]:
            frame[...] = 0


def test_a_wrong_hint_and_a_jump_are_found_by_the_delay_estimate():
    """The hint says 300 ms, the echo comes 30 ms after the speaker's hand-over: without the
    delay estimate the linear filter (its span from 260 ms on) cannot model it; with it, the
    reference is moved and the filter learns the echo. Then the capture loses 100 ms (the
    echo comes earlier against the reference): moved again, learnt again."""
    rng = np.random.default_rng(11)
    n = 16_000 * 12 // 320 * 320
    far = (0.1 * rng.standard_normal(n)).astype(np.float32)
    echo = np.concatenate([np.zeros(480, np.float32), 0.5 * far[:-480]])  # 30 ms, -6 dB
    lost = 6 * 16_000  # the capture skips 100 ms here
    results = {}
    for align in (False, True):
        fe = WebRtcFrontEnd(
            FrontEndConfig(agc=False, noise_suppression=False, highpass=False, delay_ms=300, align=align, double_talk=False, linear=True),
            apm_factory=_EchoGone,
            frame_factory=lambda v: v,
        )
        erle = []
        for i in range(0, n, 320):
            fe.add_reference(far[i : i + 320])
            if lost <= i < lost + 1600:
                continue  # these microphone frames never come
            fe.process(echo[i : i + 320])
            assert fe._linear is not None
            if i + 320 in (lost, n):
                erle.append(fe.stats.linear_erle_db or 0.0)
        results[align] = (erle, fe.stats.realignments, fe.stats.echo_delay_ms)
    assert max(results[False][0]) < 6, results  # never learnt
    erle, realignments, delay_ms = results[True]
    assert erle[0] > 15 and erle[1] > 15, results  # learnt before the loss and again after it
    # The echo comes 30 ms after the hand-over: sooner than the span's lead, so the reference
    # is used as it comes (nothing queued) and the estimate stays at 30 ms.
    assert realignments == 2 and delay_ms is not None and abs(delay_ms - 30) <= 3, results


def test_the_leak_guard_keeps_aec3s_bursts_of_echo_from_going_out():
    """A fake AEC3 that removes all the echo but, from 2 s on, lets it through whole for 60 ms
    every half second (what AEC3's suppressor does in a long room's first seconds): with the
    leak guard those frames go out from the linear path (which has learnt the echo), without
    it as they came. Echo alone throughout: the double-talk switch never takes over."""
    rng = np.random.default_rng(7)
    n = 16_000 * 4 // 320 * 320
    far = (0.1 * rng.standard_normal(n)).astype(np.float32)
    echo = np.concatenate([np.zeros(480, np.float32), 0.5 * far[:-480]])  # 30 ms, -6 dB
    frame_at = [0]

    class LeakingAec3(FakeApm):
        def process_stream(self, frame) -> None:
            if self.flags["echo_cancellation"] and not (frame_at[0] >= 100 and frame_at[0] % 25 < 3):
                frame[...] = 0

    leaked = {}
    for guard in (True, False):
        config = FrontEndConfig(agc=False, noise_suppression=False, highpass=False, delay_ms=30, leak_guard=guard)
        fe = WebRtcFrontEnd(config, apm_factory=LeakingAec3, frame_factory=lambda v: v)
        out = np.empty(n, np.float32)
        for k, i in enumerate(range(0, n, 320)):
            frame_at[0] = k
            fe.add_reference(far[i : i + 320])
            out[i : i + 320] = fe.process(echo[i : i + 320])
        bursts = np.concatenate([out[i : i + 3 * 320] for i in range(100 * 320, n, 25 * 320)])
        echoes = np.concatenate([echo[i : i + 3 * 320] for i in range(100 * 320, n, 25 * 320)])
        leaked[guard] = 10 * np.log10(np.mean(bursts.astype(np.float64) ** 2) / np.mean(echoes.astype(np.float64) ** 2))
        assert fe.stats.double_talk_frames == 0
        assert (fe.stats.leak_guard_frames >= 4 * 3) if guard else fe.stats.leak_guard_frames == 0
    assert leaked[False] > -1.0 and leaked[True] < -15.0, leaked  # the 2.5 ms cross-fade lets a little through
