"""The echo benchmark: `python -m bench.echo` (markdown table; `--json` for one object per run).

A simulated laptop: the far end's speech (tests/call/data/speech_b.wav, looped) leaves the
speaker, passes a mild loudspeaker nonlinearity, the device delay and a room (a synthetic,
exponentially decaying impulse response of 50 to 300 ms), and reaches the microphone with the
near end's speech (codec/samples/speech.wav) and a little noise. Three phases:

    far end alone (8 s) | near end alone (the near clip) | both talking (the near clip again)

Each echo path runs through the front end as a call runs it (`transmitter.frontend`, 20 ms
frames in, the far end handed over as it is "played", the device delay as the delay hint),
off and on. Reported:
- ERLE: the microphone's power over the canceller's output power (before gain control, which
  lifts speech and residual echo alike), over the far-end-alone phase from 2 s to its end, in
  0.5 s windows where the far end plays; the front end's own running estimate beside it;
- the same ERLE in what is sent (gain control included: what the other side hears);
- converged: the end of the first 0.5 s window after which no far-end window's ERLE falls
  below 20 dB (the 25 dB goal less 5 dB);
- lowest: the lowest of those windows' ERLE from 2 s on (the goal read strictly: at least 25 dB
  in every half second after the first two, not only on average); `--json` adds `leaks`, the
  runs of 20 ms frames from 2 s on below 20 dB ([start s, end s, lowest dB]);
- echo left in double talk: the largest projection of what is sent onto the echo (lags 0 to
  50 ms), in dB against the echo at the microphone, beside the same for the near end's speech
  (the APM's phase changes lower both alike);
- PESQ-WB / STOI of the near end's speech against its clean clip, alone and in double talk
  (`codec.train.evaluate.metrics`, on what the front end sends, gain control included);
- the front end's latency (cross-correlation with the clean near end; STOI is computed after
  removing it, PESQ aligns by itself) and its cost per 20 ms frame on this machine (process CPU
  time, so that other load on the machine does not count; the benchmark's own per-frame
  bookkeeping is included);
- how many 20 ms frames the echo leak guard sent from the linear path instead of AEC3's output
  (`transmitter.echo_leak_guard`; all phases).
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from codec.audio_io import load_audio
from codec.command_line import run_main
from codec.errors import CodecError
from codec.markdown_table import MarkdownTable

ROOT = Path(__file__).resolve().parents[1]
NEAR = ROOT / "codec" / "samples" / "speech.wav"
FAR = ROOT / "tests" / "call" / "data" / "speech_b.wav"
RATE = 16_000
HOP = 320
FAR_ALONE_S = 8.0
GOAL_DB = 25.0
WINDOW_S = 0.5


@dataclass(frozen=True)
class EchoPath:
    name: str
    room_ms: float  # RT60 of the synthetic room: the impulse response's length
    device_ms: float  # playout-to-capture delay of the devices (the front end's delay hint)
    echo_db: float  # echo level at the microphone relative to the near end's speech
    seed: int = 0

    def impulse_response(self) -> np.ndarray:
        rng = np.random.default_rng(self.seed)
        n = int(self.room_ms * RATE / 1000)
        t = np.arange(n) / RATE
        tail = rng.standard_normal(n) * np.exp(-6.91 * t / (self.room_ms / 1000))  # -60 dB at room_ms
        tail[0] = 4.0 * np.abs(tail).max()  # the direct path
        delay = int(self.device_ms * RATE / 1000)
        h = np.zeros(delay + n)
        h[delay:] = tail
        return h / np.sqrt(np.sum(h**2))


PATHS = (
    EchoPath("50 ms room, 20 ms device, echo -6 dB", 50, 20, -6.0, seed=1),
    EchoPath("150 ms room, 60 ms device, echo -6 dB", 150, 60, -6.0, seed=2),
    EchoPath("300 ms room, 100 ms device, echo -6 dB", 300, 100, -6.0, seed=3),
    EchoPath("300 ms room, 100 ms device, echo 0 dB", 300, 100, 0.0, seed=4),
)


@dataclass
class Scene:
    far: np.ndarray  # what the speaker is given (the front end's reference)
    mic: np.ndarray  # what the microphone picks up
    near: np.ndarray  # the near end's clean speech at the microphone (zero in the far-alone phase)
    echo: np.ndarray  # the echo alone at the microphone
    phases: tuple[slice, slice, slice]  # far alone, near alone, both


def _rms(x: np.ndarray) -> float:
    return float(np.sqrt(np.mean(np.square(x, dtype=np.float64)) + 1e-20))


def scene(path: EchoPath, near_clip: np.ndarray, far_clip: np.ndarray, noise_dbfs: float = -65.0, drift_ppm: float = 0.0) -> Scene:
    """`drift_ppm`: the microphone's clock this much faster than the speaker's (the echo path's
    delay grows by that share of the elapsed time: 60 ppm is about a sample a second at 16 kHz)."""
    from scipy.signal import fftconvolve, resample

    rng = np.random.default_rng(100 + path.seed)
    a = int(FAR_ALONE_S * RATE) // HOP * HOP
    n = near_clip.size // HOP * HOP
    total = a + 2 * n
    near_speech = near_clip[:n] / _rms(near_clip[:n]) * 10 ** (-26 / 20)  # -26 dBFS speech
    far = np.resize(far_clip / np.max(np.abs(far_clip)) * 0.5, total)
    far[a : a + n] = 0.0  # the far end is silent while the near end talks alone
    played = np.tanh(far)  # a small loudspeaker: peaks compressed by up to 1.7 dB
    echo = fftconvolve(played, path.impulse_response())[:total]
    if drift_ppm:
        # The echo as a faster clock samples it: stretched (band-limited, by the FFT), then cut.
        scaled = resample(echo, round(total * (1 + drift_ppm * 1e-6)))
        echo = np.zeros(total)
        echo[: min(total, scaled.size)] = scaled[:total]
    echo *= 10 ** ((-26 + path.echo_db) / 20) / _rms(echo[:a])  # echo level while the far end talks
    near = np.zeros(total)
    near[a : a + n] = near_speech
    near[a + n :] = near_speech
    noise = rng.standard_normal(total) * 10 ** (noise_dbfs / 20)
    mic = np.clip(near + echo + noise, -1, 1)
    return Scene(
        far.astype(np.float32), mic.astype(np.float32), near.astype(np.float32), echo.astype(np.float32), (slice(0, a), slice(a, a + n), slice(a + n, total))
    )


def run_front_end(sc: Scene, front_end, delay_ms: float) -> tuple[np.ndarray, np.ndarray, float | None]:
    """Frame by frame as in a call: each 20 ms the speaker "plays" a block (handed over as the
    reference) and the microphone delivers a frame. Returns (sent, after the canceller, the
    front end's own ERLE estimate at the end of the far-alone phase)."""
    estimate = None
    sent = np.empty_like(sc.mic)
    cancelled = np.empty_like(sc.mic)
    front_end.set_delay_ms(delay_ms)
    if hasattr(front_end, "keep_cancelled"):
        front_end.keep_cancelled = True
    for i in range(0, sc.mic.size, HOP):
        front_end.add_reference(sc.far[i : i + HOP])
        sent[i : i + HOP] = front_end.process(sc.mic[i : i + HOP])
        last = getattr(front_end, "last_cancelled", None)
        cancelled[i : i + HOP] = last if last is not None else sent[i : i + HOP]
        if i + HOP == sc.phases[0].stop:
            estimate = front_end.stats.erle_db
    return sent, cancelled, estimate


def latency(reference: np.ndarray, processed: np.ndarray) -> int:
    """The front end's delay in samples (cross-correlation peak, 0..50 ms)."""
    n = 2 * reference.size
    c = np.fft.irfft(np.fft.rfft(processed, n) * np.conj(np.fft.rfft(reference, n)), n)
    return int(np.argmax(c[: int(0.05 * RATE)]))


def erle_windows(sc: Scene, cancelled: np.ndarray) -> list[tuple[float, float]]:
    """(window end s, ERLE dB) for the far-alone phase's 0.5 s windows in which the echo is audible."""
    w = int(WINDOW_S * RATE)
    out = []
    for start in range(0, sc.phases[0].stop - w + 1, w):
        seg = slice(start, start + w)
        if _rms(sc.echo[seg]) < 10 ** (-50 / 20):
            continue
        out.append(((start + w) / RATE, 20 * np.log10(_rms(sc.mic[seg]) / _rms(cancelled[seg]))))
    return out


def leaks(sc: Scene, cancelled: np.ndarray, threshold_db: float = GOAL_DB - 5, from_s: float = 2.0) -> list[list[float]]:
    """[start s, end s, lowest ERLE dB] of each run of 20 ms frames of the far-alone phase, from
    `from_s` on, whose ERLE falls below `threshold_db` while the echo is audible: the bursts of
    echo a 0.5 s window averages away."""
    runs: list[list[float]] = []
    for start in range(int(from_s * RATE) // HOP * HOP, sc.phases[0].stop - HOP + 1, HOP):
        seg = slice(start, start + HOP)
        if _rms(sc.echo[seg]) < 10 ** (-50 / 20):
            continue
        erle = 20 * np.log10(_rms(sc.mic[seg]) / _rms(cancelled[seg]))
        if erle >= threshold_db:
            continue
        t = start / RATE
        if runs and abs(runs[-1][1] - t) < 1e-9:
            runs[-1][1] = round(t + HOP / RATE, 2)
            runs[-1][2] = min(runs[-1][2], round(erle, 1))
        else:
            runs.append([round(t, 2), round(t + HOP / RATE, 2), round(erle, 1)])
    return runs


def echo_left_db(echo: np.ndarray, out: np.ndarray, max_lag_s: float = 0.05) -> float:
    """How much of the echo's waveform is left in `out`, in dB against the echo at the
    microphone: the largest projection of `out` onto the echo over lags 0..50 ms (speech from
    the near end does not project onto the far end's). 0 dB: all of it; lower is better."""
    n = 2 * echo.size
    c = np.fft.irfft(np.fft.rfft(out, n) * np.conj(np.fft.rfft(echo, n)), n)[: int(max_lag_s * RATE)]
    return float(20 * np.log10(np.max(np.abs(c)) / float(np.dot(echo, echo)) + 1e-6))


def measure(
    path: EchoPath,
    sc: Scene,
    mode: str,
    double_talk: bool = True,
    linear: bool | None = None,
    align: bool | None = None,
    aec3_aligned: bool = False,
    hint_error_ms: float = 0.0,
    leak_guard: bool | None = None,
    drift_ppm: float = 0.0,
) -> dict:
    """One echo path through the front end (`mode` "off" or "on"); `linear` / `align` None: the
    defaults of `FrontEndConfig`; `hint_error_ms`: added to the delay hint (devices that misreport)."""
    from codec.train.evaluate import metrics
    from transmitter.frontend import FrontEndConfig, NullFrontEnd, WebRtcFrontEnd

    defaults = FrontEndConfig()
    linear = defaults.linear if linear is None else linear
    align = defaults.align if align is None else align
    leak_guard = defaults.leak_guard if leak_guard is None else leak_guard
    hint = max(0.0, path.device_ms + hint_error_ms)
    config = FrontEndConfig(delay_ms=int(hint), double_talk=double_talk, linear=linear, align=align, aec3_aligned=aec3_aligned, leak_guard=leak_guard)
    fe = NullFrontEnd("off") if mode == "off" else WebRtcFrontEnd(config, RATE, HOP)
    started = time.process_time()  # CPU time: the machine's other load does not count
    sent, cancelled, estimate = run_front_end(sc, fe, hint)
    wall = time.process_time() - started
    far_alone, near_alone, both = sc.phases
    variant = (
        ("" if double_talk else ", no double-talk path")
        + (", AEC3 fed the linear filter" if linear else "")
        + ("" if align else ", no delay estimate")
        + (", AEC3 aligned" if aec3_aligned else "")
        + ("" if leak_guard or not double_talk else ", no leak guard")
        + (f", hint {hint_error_ms:+.0f} ms off" if hint_error_ms else "")
        + (f", drift {drift_ppm:g} ppm" if drift_ppm else "")
    )
    row: dict = {"path": path.name, "front_end": mode + ("" if mode == "off" else variant)}
    stats = fe.stats
    row["realignments"] = stats.realignments
    row["leak_guard_frames"] = stats.leak_guard_frames
    row["linear_erle_db"] = None if stats.linear_erle_db is None else round(stats.linear_erle_db, 1)
    row["delay_estimator_ms_per_frame"] = round(1000 * stats.delay_estimator_cost_s / stats.frames, 3) if stats.frames else 0.0
    if mode == "off":
        row |= {"erle_db": 0.0, "erle_sent_db": 0.0, "converged_s": None, "erle_lowest_db": None, "erle_estimate_db": None}
    else:
        windows = erle_windows(sc, cancelled)
        after = [(t, e) for t, e in windows if t > 2.0]
        w = int(WINDOW_S * RATE)
        mic_p = sum(_rms(sc.mic[int(t * RATE) - w : int(t * RATE)]) ** 2 for t, _ in after)
        out_p = sum(_rms(cancelled[int(t * RATE) - w : int(t * RATE)]) ** 2 for t, _ in after)
        sent_p = sum(_rms(sent[int(t * RATE) - w : int(t * RATE)]) ** 2 for t, _ in after)
        converged: float | None = 0.0
        for k, (t, e) in enumerate(windows):
            if e < GOAL_DB - 5:
                converged = windows[k + 1][0] if k + 1 < len(windows) else None
        row |= {
            "erle_db": round(10 * np.log10(mic_p / out_p), 1) if after else None,
            "erle_sent_db": round(10 * np.log10(mic_p / sent_p), 1) if after else None,
            "converged_s": None if converged is None else round(converged, 1),
            "erle_lowest_db": round(min(e for _, e in after), 1) if after else None,
            "leaks": leaks(sc, cancelled),
            "erle_estimate_db": round(estimate, 1) if estimate is not None else None,
        }
    ref_alone, ref_both = sc.near[near_alone], sc.near[both]
    row["echo_left_double_talk_db"] = round(echo_left_db(sc.echo[both].astype(np.float64), sent[both].astype(np.float64)), 1)
    # The same projection onto the near end's speech: how much of it the APM's processing keeps
    # as a waveform (its phase changes lower both figures alike).
    row["near_kept_double_talk_db"] = round(echo_left_db(sc.near[both].astype(np.float64), sent[both].astype(np.float64)), 1)
    lag = latency(ref_alone, sent[near_alone])  # STOI does not align; PESQ does
    sent = np.concatenate([sent[lag:], np.zeros(lag, np.float32)])
    alone, dt = metrics(ref_alone, sent[near_alone]), metrics(ref_both, sent[both])
    row |= {
        "pesq_near_alone": round(alone["pesq_wb"], 2),
        "stoi_near_alone": round(alone["stoi"], 3),
        "pesq_double_talk": round(dt["pesq_wb"], 2),
        "stoi_double_talk": round(dt["stoi"], 3),
        "ms_per_frame": round(1000 * wall / (sc.mic.size / HOP), 3),
        "latency_ms": round(1000 * lag / RATE, 1),
    }
    return row


def compare_packages(path: EchoPath, sc: Scene) -> list[dict]:
    """The raw APM of each candidate package, echo cancellation only, 10 ms int16 frames, on the
    far-alone phase: ERLE (2 s on) and the cost per 20 ms frame."""
    from transmitter.frontend import to_int16

    mic, far = sc.mic[sc.phases[0]], sc.far[sc.phases[0]]
    rows: list[dict[str, str | float]] = []
    for package in ("livekit", "aec-audio-processing"):
        try:
            if package == "livekit":
                from livekit import rtc

                apm = rtc.AudioProcessingModule(echo_cancellation=True)

                def step(m: np.ndarray, f: np.ndarray) -> np.ndarray:
                    apm.process_reverse_stream(rtc.AudioFrame(to_int16(f).tobytes(), RATE, 1, 160))
                    frame = rtc.AudioFrame(bytearray(to_int16(m).tobytes()), RATE, 1, 160)
                    apm.set_stream_delay_ms(int(path.device_ms))
                    apm.process_stream(frame)
                    return np.frombuffer(frame.data, np.int16)
            else:
                from aec_audio_processing import AudioProcessor

                ap = AudioProcessor(enable_aec=True, enable_ns=False, enable_agc=False, enable_vad=False)
                ap.set_stream_format(RATE, 1)
                ap.set_reverse_stream_format(RATE, 1)

                def step(m: np.ndarray, f: np.ndarray) -> np.ndarray:
                    ap.process_reverse_stream(to_int16(f).tobytes())
                    ap.set_stream_delay(int(path.device_ms))
                    return np.frombuffer(ap.process_stream(to_int16(m).tobytes()), np.int16)
        except (ImportError, OSError) as exc:
            rows.append({"path": path.name, "package": package, "error": str(exc)})
            continue
        out = np.empty_like(mic)
        started = time.perf_counter()
        for i in range(0, mic.size, 160):
            out[i : i + 160] = step(mic[i : i + 160], far[i : i + 160]) / 32768.0
        wall = time.perf_counter() - started
        windows = [(t, e) for t, e in erle_windows(sc, out) if t > 2.0]
        w = int(WINDOW_S * RATE)
        mic_p = sum(_rms(mic[int(t * RATE) - w : int(t * RATE)]) ** 2 for t, _ in windows)
        out_p = sum(_rms(out[int(t * RATE) - w : int(t * RATE)]) ** 2 for t, _ in windows)
        rows.append(
            {"path": path.name, "package": package, "erle_db": round(10 * np.log10(mic_p / out_p), 1), "ms_per_frame": round(1000 * wall / (mic.size / HOP), 3)}
        )
    return rows


def _aec3_alone(sc: Scene, delay_ms: int) -> np.ndarray:
    """livekit's APM, echo cancellation only, 10 ms frames, the given delay hint."""
    from livekit import rtc

    from transmitter.frontend import to_int16

    apm = rtc.AudioProcessingModule(echo_cancellation=True)
    out = np.empty_like(sc.mic)
    for i in range(0, sc.mic.size, 160):
        apm.process_reverse_stream(rtc.AudioFrame(to_int16(sc.far[i : i + 160]).tobytes(), RATE, 1, 160))
        frame = rtc.AudioFrame(bytearray(to_int16(sc.mic[i : i + 160]).tobytes()), RATE, 1, 160)
        apm.set_stream_delay_ms(delay_ms)
        apm.process_stream(frame)
        out[i : i + 160] = np.frombuffer(frame.data, np.int16) / 32768.0
    return out


def why(path: EchoPath, near_clip: np.ndarray, far_clip: np.ndarray) -> list[dict]:
    """What limits the goals, on one echo path: (1) AEC3 alone under three delay hints (ERLE 2 s
    on, the first window after which it stays above 20 dB); (2) double-talk PESQ-WB of the
    microphone with the echo removed linearly to a given residual (what a linear canceller must
    reach); (3) AEC3 alone in double talk with the echo at -6 and -25 dB, beside the raw microphone."""
    from codec.train.evaluate import metrics

    sc = scene(path, near_clip, far_clip)
    both = sc.phases[2]
    rows = []
    for hint in (0, int(path.device_ms), 300):
        out = _aec3_alone(sc, hint)
        windows = erle_windows(sc, out)
        after = [e for t, e in windows if t > 2.0]
        stays = 0.0
        for k, (t, e) in enumerate(windows):
            if e < GOAL_DB - 5:
                stays = windows[k + 1][0] if k + 1 < len(windows) else float("nan")
        rows.append(
            {
                "path": path.name,
                "aec3_delay_hint_ms": hint,
                "erle_2s_on_mean_db": round(float(np.mean(after)), 1),
                "windows_db": [round(e) for _, e in windows],
                "stays_above_20db_from_s": stays,
            }
        )
    for residual_db in (10, 15, 20, 25, 30):
        out = sc.mic - sc.echo * (1 - 10 ** (-residual_db / 20))
        rows.append(
            {
                "path": path.name,
                "linear_residual_db": -residual_db,
                "pesq_double_talk": round(metrics(sc.near[both], out[both].astype(np.float32))["pesq_wb"], 2),
            }
        )
    for echo_db in (-6.0, -25.0):
        weaker = EchoPath(path.name, path.room_ms, path.device_ms, echo_db, path.seed)
        sw = scene(weaker, near_clip, far_clip)
        out = _aec3_alone(sw, int(path.device_ms)).astype(np.float32)
        lag = latency(sw.near[sw.phases[1]], out[sw.phases[1]])
        out = np.concatenate([out[lag:], np.zeros(lag, np.float32)])
        rows.append(
            {
                "path": path.name,
                "echo_db": echo_db,
                "aec3_pesq_double_talk": round(metrics(sw.near[both], out[both])["pesq_wb"], 2),
                "raw_mic_pesq_double_talk": round(metrics(sw.near[both], sw.mic[both])["pesq_wb"], 2),
            }
        )
    return rows


def markdown(rows: list[dict]) -> str:
    def f(v, spec: str) -> str:
        return "-" if v is None else format(v, spec)

    header = [
        "echo path",
        "front end",
        "ERLE dB (2 s on)",
        "in what is sent dB",
        "converged s",
        "lowest 0.5 s from 2 s dB",
        "estimate dB",
        "double talk: echo left / near kept dB",
        "PESQ-WB near alone",
        "PESQ-WB double talk",
        "STOI near alone",
        "STOI double talk",
        "latency ms",
        "ms / 20 ms frame",
        "realigned / delay est. ms per frame",
        "leak guard frames",
    ]
    table = MarkdownTable(header)
    lines = [table.head()]
    for r in rows:
        cells = [
            r["path"],
            r["front_end"],
            f(r["erle_db"], ".1f"),
            f(r["erle_sent_db"], ".1f"),
            f(r["converged_s"], ".1f"),
            f(r["erle_lowest_db"], ".1f"),
            f(r["erle_estimate_db"], ".1f"),
            f"{r['echo_left_double_talk_db']:.1f} / {r['near_kept_double_talk_db']:.1f}",
            f"{r['pesq_near_alone']:.2f}",
            f"{r['pesq_double_talk']:.2f}",
            f"{r['stoi_near_alone']:.3f}",
            f"{r['stoi_double_talk']:.3f}",
            f"{r['latency_ms']:.1f}",
            f"{r['ms_per_frame']:.3f}",
            f"{r['realignments']} / {r['delay_estimator_ms_per_frame']:.3f}",
            str(r["leak_guard_frames"]),
        ]
        lines.append(table.row(cells))
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m bench.echo", description=__doc__.splitlines()[0])
    p.add_argument("--near", type=Path, default=NEAR, help="near-end speech (default: the bundled sample)")
    p.add_argument("--far", type=Path, default=FAR, help="far-end speech (default: tests/call/data/speech_b.wav)")
    p.add_argument("--paths", type=int, nargs="*", help=f"which echo paths, by index 0..{len(PATHS) - 1} (default: all)")
    p.add_argument("--json", action="store_true", help="one JSON object per run instead of the table")
    p.add_argument("--no-double-talk", action="store_true", help="the front end without its double-talk path (AEC3's output throughout)")
    p.add_argument(
        "--linear",
        action=argparse.BooleanOptionalAction,
        default=None,
        help="AEC3 gets the linear filter's output once the filter is trusted (FrontEndConfig.linear; default: its default)",
    )
    p.add_argument(
        "--align",
        action=argparse.BooleanOptionalAction,
        default=None,
        help="the reference lined up by the echo delay estimate (FrontEndConfig.align; default: its default)",
    )
    p.add_argument(
        "--aec3-aligned",
        action="store_true",
        help="AEC3's reference from the linear filter's delay-aligned queue, paced by the capture (FrontEndConfig.aec3_aligned)",
    )
    p.add_argument(
        "--leak-guard",
        action=argparse.BooleanOptionalAction,
        default=None,
        help="while the far end plays, send the quieter of AEC3's output and the linear path's (FrontEndConfig.leak_guard; default: its default)",
    )
    p.add_argument("--drift-ppm", type=float, default=0.0, help="the microphone's clock this many ppm faster than the speaker's (a drifting echo delay)")
    p.add_argument("--hint-error-ms", type=float, default=0.0, help="add this to the delay hint (devices that misreport their latencies)")
    p.add_argument(
        "--compare-packages",
        action="store_true",
        help="echo cancellation alone through livekit and aec-audio-processing (each if installed) on the far-alone phase",
    )
    p.add_argument(
        "--why",
        action="store_true",
        help="what limits the goals: AEC3 alone under three delay hints, the double-talk PESQ-WB a linear canceller's residual "
        "allows, AEC3 in double talk with a weak echo (JSON lines)",
    )
    args = p.parse_args(argv)
    return run_main(lambda: _run(args))


def _run(args: argparse.Namespace) -> None:
    near, _ = load_audio(args.near, RATE)
    far, _ = load_audio(args.far, RATE)
    if near.size < RATE or far.size < RATE:
        raise CodecError("--near and --far need at least a second of audio each")
    if any(not 0 <= i < len(PATHS) for i in args.paths or ()):
        raise CodecError(f"--paths takes indexes 0..{len(PATHS) - 1}")
    chosen = [PATHS[i] for i in (args.paths if args.paths else range(len(PATHS)))]
    if args.compare_packages:
        for path in chosen:
            sc = scene(path, near, far)
            for row in compare_packages(path, sc):
                print(json.dumps(row), flush=True)
        return
    try:
        import livekit.rtc  # noqa: F401
    except (ImportError, OSError) as exc:
        raise CodecError(f"the front end needs the `livekit` package (pip install 'ssvoip[frontend]'): {exc}") from None
    if args.why:
        for path in chosen:
            for row in why(path, near, far):
                print(json.dumps(row), flush=True)
        return
    rows = []
    for path in chosen:
        sc = scene(path, near, far, drift_ppm=args.drift_ppm)
        for mode in ("off", "on"):
            row = measure(
                path,
                sc,
                mode,
                double_talk=not args.no_double_talk,
                linear=args.linear,
                align=args.align,
                aec3_aligned=args.aec3_aligned,
                hint_error_ms=args.hint_error_ms,
                leak_guard=args.leak_guard,
                drift_ppm=args.drift_ppm,
            )
            rows.append(row)
            if args.json:
                print(json.dumps(row), flush=True)
    if not args.json:
        print(markdown(rows))


if __name__ == "__main__":
    sys.exit(main())
