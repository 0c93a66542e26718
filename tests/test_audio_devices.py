"""Real audio devices through PulseAudio null sinks: a played sample goes into the
transmitter's microphone, the receiver plays into another sink whose monitor is recorded.

Needs the pulseaudio, pulseaudio-utils, libportaudio2 and libasound2-plugins packages
(.ci/run installs them); skipped with the reason where PulseAudio cannot run.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf

from codec.audio_io import load_audio
from tests.ports import free_port

ROOT = Path(__file__).resolve().parents[1]
SAMPLE = ROOT / "codec" / "samples" / "speech.wav"


@pytest.fixture()
def pulse(tmp_path: Path):
    for tool in ("pulseaudio", "pactl", "parec", "paplay"):
        if shutil.which(tool) is None:
            pytest.skip(f"{tool} not installed (apt-get install pulseaudio pulseaudio-utils libportaudio2 libasound2-plugins)")
    check = subprocess.run([sys.executable, "-c", "import sounddevice"], capture_output=True, text=True)
    if check.returncode:
        pytest.skip(f"sounddevice cannot load PortAudio: {check.stderr.strip().splitlines()[-1]}")
    socket_path = tmp_path / "native"
    conf = tmp_path / "pa.conf"
    conf.write_text(
        f"load-module module-native-protocol-unix socket={socket_path} auth-anonymous=1\n"
        "load-module module-null-sink sink_name=mic_feed\n"
        "load-module module-null-sink sink_name=speaker\n"
    )
    env = os.environ | {"PULSE_SERVER": f"unix:{socket_path}", "HOME": str(tmp_path), "XDG_RUNTIME_DIR": str(tmp_path)}
    daemon = subprocess.Popen(
        ["pulseaudio", "-n", "-F", str(conf), "--daemonize=no", "--exit-idle-time=-1", "--log-target=stderr"],
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
    )
    for _ in range(50):
        if subprocess.run(["pactl", "info"], env=env, capture_output=True).returncode == 0:
            break
        if daemon.poll() is not None:
            pytest.skip(f"PulseAudio cannot run here: {daemon.stderr.read().strip()[-300:]}")
        time.sleep(0.1)
    else:
        daemon.kill()
        pytest.skip("PulseAudio did not come up within 5 s")
    yield env
    daemon.terminate()
    daemon.wait(timeout=10)


def _wait_for_recording_streams(env: dict, count: int, process: subprocess.Popen, timeout: float = 60.0) -> None:
    """Until `count` clients record from PulseAudio (the model load takes seconds on a busy machine)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        listing = subprocess.run(["pactl", "list", "short", "source-outputs"], env=env, capture_output=True, text=True).stdout
        if len(listing.strip().splitlines()) >= count:
            time.sleep(0.3)
            return
        if process.poll() is not None:
            pytest.fail(f"the transmitter exited early: {process.stderr.read()[-1500:]}")
        time.sleep(0.1)
    pytest.fail("the transmitter did not open the microphone within 60 s")


def _envelope(x: np.ndarray, block: int = 320) -> np.ndarray:
    n = x.size // block
    return np.sqrt((x[: n * block].reshape(n, block) ** 2).mean(1) + 1e-10)


@pytest.mark.slow
def test_microphone_to_speaker_through_pulseaudio(pulse: dict, tmp_path: Path) -> None:
    port = free_port()
    stats = tmp_path / "stats.json"
    recording = tmp_path / "recorded.wav"
    receiver = subprocess.Popen(
        [sys.executable, "-m", "receiver", "--listen", f"127.0.0.1:{port}", "--output", "speaker", "--once", "--quiet", "--stats-json", str(stats)],
        cwd=ROOT,
        env=pulse | {"PULSE_SINK": "speaker"},
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    recorder = subprocess.Popen(
        ["parec", "-d", "speaker.monitor", "--rate=16000", "--channels=1", "--format=s16le", "--file-format=wav", str(recording)], env=pulse
    )
    time.sleep(3.0)  # the receiver loads its model
    transmitter = subprocess.Popen(
        [sys.executable, "-m", "transmitter", "--connect", f"ws://127.0.0.1:{port}", "--input", "mic", "--seconds", "10"],
        cwd=ROOT,
        env=pulse | {"PULSE_SOURCE": "mic_feed.monitor"},
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    _wait_for_recording_streams(pulse, 2, transmitter)  # parec's, then the transmitter's microphone
    subprocess.run(["paplay", "-d", "mic_feed", str(SAMPLE)], env=pulse, check=True, timeout=30)
    out, err = transmitter.communicate(timeout=60)
    assert transmitter.returncode == 0, err[-1500:]
    receiver.communicate(timeout=60)
    assert receiver.returncode == 0
    time.sleep(0.5)
    recorder.terminate()
    recorder.wait(timeout=10)

    played, _ = load_audio(SAMPLE, 16_000)
    recorded, rate = sf.read(recording, dtype="float32")
    assert rate == 16_000
    a, b = _envelope(played), _envelope(recorded)
    # nanmax: a window of pure digital silence (a slow start recorded seconds of it before the
    # speech) has no defined correlation; Python's max() returned that nan when it came first.
    with np.errstate(invalid="ignore", divide="ignore"):
        best = np.nanmax([np.corrcoef(a, b[lag : lag + a.size])[0, 1] for lag in range(0, b.size - a.size, 1)])
    # The speech's loudness contour (20 ms blocks) comes out of the speaker: silence or
    # noise correlates near 0 with it.
    assert best > 0.6, best
