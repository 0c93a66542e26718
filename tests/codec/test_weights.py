"""The shipped weights load by default and are checked before use."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest

from codec.errors import WeightsError
from codec.weights import WEIGHTS_DIR, load_model, save_model
from tests.codec.conftest import trained_like


def test_shipped_models_load() -> None:
    model, model_id = load_model()
    assert model_id.startswith(model.cfg.name + "-") and model.cfg.name == "soundstream16k-lyra2x"
    assert not model.training
    assert model.cfg.kbps_for_layers(model.cfg.n_quantizers) == pytest.approx(16.0)
    lyra, _ = load_model(name="soundstream16k-lyra2")
    assert lyra.cfg.kbps_for_layers(lyra.cfg.n_quantizers) == pytest.approx(9.2)
    switch, switch_id = load_model(name="soundstream16k-lyra2xd")  # an overlay on the default's weights
    assert switch_id.startswith("soundstream16k-lyra2xd-") and switch.cfg.denoise_conditioning
    assert (WEIGHTS_DIR / "soundstream16k-lyra2xd.pt").stat().st_size < (WEIGHTS_DIR / "soundstream16k-lyra2x.pt").stat().st_size / 10
    own, own_id = load_model(name="ssc16k")
    assert own_id.startswith("ssc16k-") and own.cfg.family == "ssc"
    assert own.cfg.kbps_for_layers(own.cfg.n_quantizers) >= 12.0


def test_save_load_round_trip(tmp_path: Path) -> None:
    model = trained_like()
    model_id = save_model(model, tmp_path)
    loaded, loaded_id = load_model(tmp_path)
    assert loaded_id == model_id
    assert loaded.cfg == model.cfg


def test_corrupt_weights_are_refused(tmp_path: Path) -> None:
    for name in ("ssc16k.pt", "ssc16k.json"):
        shutil.copy(WEIGHTS_DIR / name, tmp_path / name)
    data = bytearray((tmp_path / "ssc16k.pt").read_bytes())
    data[len(data) // 2] ^= 1
    (tmp_path / "ssc16k.pt").write_bytes(bytes(data))
    with pytest.raises(WeightsError, match="checksum"):
        load_model(tmp_path)


def test_weights_that_do_not_fit_the_code_are_refused(tmp_path: Path) -> None:
    save_model(trained_like(), tmp_path)
    meta = json.loads((tmp_path / "ssc16k.json").read_text())
    # A config from a future version with a field this code does not know.
    import io

    import torch

    blob = torch.load(tmp_path / "ssc16k.pt", weights_only=True)
    blob["config"]["future_option"] = 1
    buffer = io.BytesIO()
    torch.save(blob, buffer)
    (tmp_path / "ssc16k.pt").write_bytes(buffer.getvalue())
    import hashlib

    meta["sha256"] = hashlib.sha256(buffer.getvalue()).hexdigest()
    (tmp_path / "ssc16k.json").write_text(json.dumps(meta))
    with pytest.raises(WeightsError, match="does not fit"):
        load_model(tmp_path)


def test_missing_weights(tmp_path: Path) -> None:
    with pytest.raises(WeightsError, match="no model"):
        load_model(tmp_path)


def test_cli_default_model_name_matches_the_registry() -> None:
    from codec.command_line import DEFAULT_MODEL_NAME
    from codec.weights import DEFAULT_MODEL, available_models

    assert DEFAULT_MODEL_NAME == DEFAULT_MODEL == available_models()[0]
