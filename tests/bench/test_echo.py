"""The echo benchmark's scene and its refusals (the full run: `python -m bench.echo`)."""

from __future__ import annotations

import numpy as np

from bench import echo
from transmitter.frontend import NullFrontEnd


def test_scene_has_three_phases_with_the_asked_levels():
    rng = np.random.default_rng(0)
    near, far = (0.1 * rng.standard_normal(3 * 16_000)).astype(np.float32), (0.1 * rng.standard_normal(2 * 16_000)).astype(np.float32)
    sc = echo.scene(echo.EchoPath("t", 100, 40, -6.0), near, far)
    far_alone, near_alone, both = sc.phases
    assert far_alone.stop == near_alone.start and near_alone.stop == both.start and both.stop == sc.mic.size
    assert not sc.far[near_alone].any() and not sc.near[far_alone].any()
    echo_db = 20 * np.log10(np.std(sc.echo[far_alone]) / np.std(sc.near[near_alone]))
    assert abs(echo_db + 6.0) < 0.5
    sent, cancelled, estimate = echo.run_front_end(sc, NullFrontEnd("off"), 40)
    np.testing.assert_array_equal(sent, sc.mic)  # off: the microphone as it is
    assert estimate is None
    assert all(abs(e) < 1e-6 for _, e in echo.erle_windows(sc, cancelled))


def test_bad_arguments_are_one_error_line(capsys, tmp_path):
    assert echo.main(["--paths", "9"]) == 2
    assert capsys.readouterr().err.startswith("error: --paths")
    assert echo.main(["--far", str(tmp_path / "missing.wav")]) == 2
    err = capsys.readouterr().err
    assert err.startswith("error:") and err.count("\n") == 1


def test_leaks_are_the_runs_of_frames_below_20_db_from_2_s_on():
    rng = np.random.default_rng(1)
    near, far = (0.1 * rng.standard_normal(3 * 16_000)).astype(np.float32), (0.1 * rng.standard_normal(2 * 16_000)).astype(np.float32)
    sc = echo.scene(echo.EchoPath("t", 100, 40, -6.0), near, far)
    cancelled = sc.mic * 10 ** (-40 / 20)  # 40 dB removed ...
    cancelled[int(3.0 * 16_000) : int(3.1 * 16_000)] = sc.mic[int(3.0 * 16_000) : int(3.1 * 16_000)]  # ... but 100 ms let through
    cancelled[int(1.0 * 16_000) : int(1.1 * 16_000)] = sc.mic[int(1.0 * 16_000) : int(1.1 * 16_000)]  # before 2 s: not counted
    assert echo.leaks(sc, cancelled) == [[3.0, 3.1, 0.0]]


def test_a_drifting_clock_delays_the_echo_more_and_more():
    rng = np.random.default_rng(2)
    near, far = (0.1 * rng.standard_normal(3 * 16_000)).astype(np.float32), (0.1 * rng.standard_normal(2 * 16_000)).astype(np.float32)
    path = echo.EchoPath("t", 100, 40, -6.0)
    steady, drifting = echo.scene(path, near, far), echo.scene(path, near, far, drift_ppm=1000.0)
    np.testing.assert_array_equal(steady.far, drifting.far)  # the reference is the speaker's, untouched
    for at_s in (1.0, 12.5):
        seg = slice(int((at_s - 0.25) * 16_000), int((at_s + 0.25) * 16_000))
        a, b = steady.echo[seg].astype(np.float64), drifting.echo[seg].astype(np.float64)
        c = np.fft.irfft(np.fft.rfft(b, 2 * a.size) * np.conj(np.fft.rfft(a, 2 * a.size)))
        assert abs(int(np.argmax(c[:400])) - at_s * 16) <= 5  # 1000 ppm: 16 samples later per second (+-4 over the window)
