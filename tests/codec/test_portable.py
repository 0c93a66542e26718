"""The portable training pack: mu-law round trip, whole recordings, every source, the CLI."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra.numpy import arrays

from codec.train.portable import mulaw_decode, mulaw_encode, pack, unpack

ROOT = Path(__file__).resolve().parents[2]


@settings(max_examples=50, deadline=None)
@given(arrays(np.int16, st.integers(1, 2000)))
def test_mulaw_round_trip_error_is_relative(pcm: np.ndarray) -> None:
    back = mulaw_decode(mulaw_encode(pcm)).astype(np.float64)
    err = np.abs(back - pcm)
    # G.711's curve: the step grows with the level; under 4 % of it plus a small floor.
    assert np.all(err <= 0.04 * np.abs(pcm.astype(np.float64)) + 4)


def _data_set(folder: Path) -> None:
    rng = np.random.default_rng(0)
    items, streams = [], {"speech": [], "speech_val": []}
    for stream, n in (("speech", 12), ("speech_val", 3)):
        offset = 0
        for i in range(n):
            x = (3000 * rng.standard_normal(1600 + 160 * i)).astype(np.int16)
            streams[stream].append(x)
            items.append({"stream": stream, "source": f"src{i % 3}", "origin": f"f{i}", "offset": offset, "samples": x.size})
            offset += x.size
    folder.mkdir()
    for stream, parts in streams.items():
        np.save(folder / f"{stream}.npy", np.concatenate(parts))
    (folder / "manifest.json").write_text(json.dumps({"seed": 0, "sample_rate": 16000, "items": items, "seconds": {}}))


def test_pack_takes_whole_recordings_from_every_source_and_unpacks(tmp_path: Path) -> None:
    _data_set(tmp_path / "data")
    summary = pack(tmp_path / "data", tmp_path / "pack", minutes=0.01, val_minutes=0.001)
    speech = summary["streams"]["speech"]
    assert speech["seconds"] >= 0.6 and set(speech["seconds_by_source"]) == {"src0", "src1", "src2"}
    seconds = unpack(tmp_path / "pack", tmp_path / "out")
    assert seconds["speech"] == speech["seconds"]
    got = np.load(tmp_path / "out" / "speech.npy")
    whole = np.load(tmp_path / "data" / "speech.npy")
    assert got.dtype == np.int16 and abs(float(np.std(got)) - float(np.std(whole))) < 0.05 * float(np.std(whole))


def test_cli_refuses_to_overwrite_and_explains(tmp_path: Path) -> None:
    _data_set(tmp_path / "data")
    cmd = [sys.executable, "-m", "codec", "data", "pack", "--source", str(tmp_path / "data"), "--out", str(tmp_path / "pack"), "--minutes", "0.01"]
    assert subprocess.run(cmd, capture_output=True, text=True, cwd=ROOT).returncode == 0
    again = subprocess.run(cmd, capture_output=True, text=True, cwd=ROOT)
    assert again.returncode != 0 and "already holds a pack" in again.stderr and "Traceback" not in again.stderr
    bad = subprocess.run(
        [sys.executable, "-m", "codec", "data", "unpack", "--source", str(tmp_path / "data"), "--out", str(tmp_path / "o")],
        capture_output=True,
        text=True,
        cwd=ROOT,
    )
    assert bad.returncode != 0 and "not a pack" in bad.stderr and "Traceback" not in bad.stderr
