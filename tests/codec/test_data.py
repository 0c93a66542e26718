"""The data builder on whatever sources this machine has (a few items of each)."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from codec.train.data import _check_not_reserved, build_dataset


def test_quick_build_writes_streams_and_manifest(tmp_path: Path) -> None:
    manifest = build_dataset(tmp_path, tts_sentences=2, val_every=3, progress=False, max_per_source=3)
    if not manifest["items"]:
        pytest.skip("no training sources installed here (see docs/training.md for the apt packages)")
    saved = json.loads((tmp_path / "manifest.json").read_text())
    assert saved["seed"] == 0 and saved["items"] == manifest["items"]
    for item in manifest["items"]:
        pcm = np.load(tmp_path / f"{item['stream']}.npy", mmap_mode="r")
        assert item["offset"] + item["samples"] <= pcm.size
        assert "dev-clips" not in item["origin"]


@pytest.mark.parametrize("path", ["/usr/share/sounds/alsa/Front_Left.wav", "/x/pocketsphinx/test/data/a.wav", "../shared/dev-clips/speech/a.wav"])
def test_reserved_evaluation_audio_is_refused(path: str) -> None:
    with pytest.raises(ValueError, match="reserved"):
        _check_not_reserved(Path(path))
