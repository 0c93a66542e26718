"""`python -m bench.concealment`: seeded loss patterns, libopus's own concealment, one small run."""

from __future__ import annotations

import ctypes.util

import numpy as np
import pytest

from bench.concealment import _LibOpusDecoder, benchmark, loss_pattern, main, opus_packets
from codec.concealment import LatentPredictor, PredictorConfig


def test_patterns_are_seeded_and_hit_their_rates() -> None:
    np.testing.assert_array_equal(loss_pattern("random-10", 500, 3), loss_pattern("random-10", 500, 3))
    for name, rate in (("random-5", 0.05), ("random-20", 0.2), ("ge-10-burst3", 0.1)):
        lost = np.concatenate([loss_pattern(name, 1000, seed) for seed in range(20)])
        assert abs(lost.mean() - rate) < 0.3 * rate, name
    bursts = loss_pattern("ge-10-burst3", 20000, 0)
    starts = (bursts[1:] & ~bursts[:-1]).sum()
    assert 2.3 < bursts.sum() / starts < 3.7  # mean burst ~3 frames


def test_packet_patterns_lose_whole_packets() -> None:
    lost = np.concatenate([loss_pattern("packets6-10", 600, seed) for seed in range(20)])
    assert abs(lost.mean() - 0.1) < 0.03
    packets = lost.reshape(-1, 6)
    assert np.all(packets[:, 1:].all(1) | ~packets[:, 1:].any(1))  # a packet goes whole...
    inside = np.arange(packets.shape[0]) % 100 != 0  # ...but a clip's frame 0 always arrives
    np.testing.assert_array_equal(packets[inside, 0], packets[inside, 1])
    with pytest.raises(ValueError):
        loss_pattern("packets6", 10, 0)


# The Opus rows drive the system's libopus through ctypes (.ci/run installs libopus0).
needs_libopus = pytest.mark.skipif(ctypes.util.find_library("opus") is None, reason="no libopus (apt-get install libopus0)")


@needs_libopus
def test_libopus_conceals_a_lost_packet_with_sound() -> None:
    t = np.arange(16000) / 16000
    tone = (0.3 * np.sin(2 * np.pi * 200 * t)).astype(np.float32)
    packets = opus_packets(tone, 9.2, 320)
    decoder = _LibOpusDecoder(320)
    try:
        for p in packets[:20]:
            decoder.decode(p)
        concealed = decoder.decode(None)
    finally:
        decoder.close()
    assert np.sqrt(np.mean(concealed**2)) > 0.05  # continues the tone, not silence


@pytest.mark.slow  # the model, the ONNX decoder and the scorers' imports: a few seconds
@needs_libopus
def test_a_small_run_scores_every_concealer(capsys) -> None:
    t = np.arange(32000) / 16000
    clip = ((0.3 * np.sin(2 * np.pi * 150 * t) + 0.1 * np.sin(2 * np.pi * 600 * t)) * (0.6 + 0.4 * np.sin(2 * np.pi * 3 * t))).astype(np.float32)
    rows = benchmark([clip], 46, LatentPredictor(PredictorConfig()).eval(), fade=0.8, hold=1, patterns=("random-20",))
    by = {(r.pattern, r.concealer): r for r in rows}
    assert set(by) == {("none", "codec"), ("none", "opus"), ("random-20", "repeat"), ("random-20", "neural"), ("random-20", "opus")}
    for name in ("repeat", "neural", "opus"):
        lossy = by["random-20", name]
        assert lossy.loss > 0.05 and lossy.pesq_nolo < 4.5 and 0 < lossy.stoi_clean <= 1
    assert main(["/nonexistent-folder"]) == 2 and capsys.readouterr().err.startswith("error: ")


def test_a_reach_beyond_the_playouts_is_a_one_line_error(capsys) -> None:
    assert main(["--reach", "9", "--no-opus"]) == 2
    assert capsys.readouterr().err.startswith("error: --reach")


def test_the_concealer_is_handed_the_nearest_later_frame_within_reach() -> None:
    from bench.concealment import conceal

    class Recorder:
        def __init__(self) -> None:
            self.asked: list[tuple[int, int]] = []  # (the later frame's first code, distance)

        def received(self, decoder, codes: np.ndarray) -> np.ndarray:
            return np.zeros(4, np.float32)

        def missing(self, decoder, following: np.ndarray | None = None, distance: int = 1) -> np.ndarray:
            self.asked.append((-1, 0) if following is None else (int(following[0]), distance))
            return np.zeros(4, np.float32)

    class NoDecoder:
        def reset(self) -> None:
            pass

    codes = np.arange(12)[None]  # frame t's code is t
    lost = np.zeros(12, bool)
    lost[[2, 3, 5, 6, 7, 8, 9]] = True
    wide, near = Recorder(), Recorder()
    conceal(NoDecoder(), codes, lost, wide)
    conceal(NoDecoder(), codes, lost, near, reach=1)
    assert wide.asked == [(4, 2), (4, 1), (-1, 0), (10, 4), (10, 3), (10, 2), (10, 1)]
    assert near.asked == [(-1, 0), (4, 1), (-1, 0), (-1, 0), (-1, 0), (-1, 0), (10, 1)]
