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
