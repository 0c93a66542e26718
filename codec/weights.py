"""The shipped model: weights inside the package, checked before use.

A model is two files in a folder: `<name>.pt` (config + float16 state dict) and
`<name>.json` (its config, sha256 and model id). Loading verifies the checksum, that the
config parses for this code, and that every tensor fits; any failure is a WeightsError
with one line saying which.
"""

from __future__ import annotations

import hashlib
import io
import json
from pathlib import Path

import torch
from pydantic import ValidationError

from codec.config import CodecConfig
from codec.errors import WeightsError
from codec.model import Codec

WEIGHTS_DIR = Path(__file__).parent / "weights"
DEFAULT_MODEL = "ssc16k"


def _sha256(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def model_id_for(cfg: CodecConfig, digest: str) -> str:
    return f"{cfg.name}-{digest[:10]}"


# Buffers only training needs (EMA statistics of the codebooks): not shipped.
_TRAINING_ONLY = ("cluster_size", "code_sum", "window_usage", "window_seen")


def _training_only(key: str) -> bool:
    return key.rsplit(".", 1)[-1] in _TRAINING_ONLY


def save_model(model: Codec, folder: Path, name: str = DEFAULT_MODEL) -> str:
    """Write a model for shipping (float16 tensors); returns its model id."""
    folder.mkdir(parents=True, exist_ok=True)
    state = {
        k: (v.half() if v.is_floating_point() else v)
        for k, v in model.state_dict().items()
        if not _training_only(k)
    }
    buffer = io.BytesIO()
    torch.save({"config": model.cfg.model_dump(), "state": state}, buffer)
    data = buffer.getvalue()
    digest = _sha256(data)
    model_id = model_id_for(model.cfg, digest)
    (folder / f"{name}.pt").write_bytes(data)
    meta = {"model_id": model_id, "sha256": digest, "config": model.cfg.model_dump()}
    (folder / f"{name}.json").write_text(json.dumps(meta, indent=1) + "\n")
    return model_id


def load_model(folder: Path | None = None, name: str = DEFAULT_MODEL) -> tuple[Codec, str]:
    """Load and verify a shipped model; returns (model in eval mode, model id)."""
    folder = folder or WEIGHTS_DIR
    pt, meta_path = folder / f"{name}.pt", folder / f"{name}.json"
    if not pt.is_file() or not meta_path.is_file():
        raise WeightsError(f"no model '{name}' in {folder} (expected {pt.name} and {meta_path.name})")
    data = pt.read_bytes()
    try:
        meta = json.loads(meta_path.read_text())
        expected = meta["sha256"]
    except (ValueError, KeyError):
        raise WeightsError(f"{meta_path}: unreadable model description") from None
    if _sha256(data) != expected:
        raise WeightsError(f"{pt}: checksum mismatch, the weights file is corrupt or was replaced")
    try:
        blob = torch.load(io.BytesIO(data), map_location="cpu", weights_only=True)
        cfg = CodecConfig.model_validate(blob["config"])
    except (ValidationError, KeyError, RuntimeError) as exc:
        raise WeightsError(f"{pt}: the model's config does not fit this code ({str(exc).splitlines()[0]})") from None
    model = Codec(cfg)
    try:
        state = {k: v.float() if v.is_floating_point() else v for k, v in blob["state"].items()}
        missing, unexpected = model.load_state_dict(state, strict=False)
    except (RuntimeError, AttributeError) as exc:
        raise WeightsError(f"{pt}: the weights do not fit this code ({str(exc).splitlines()[0]})") from None
    missing = [k for k in missing if not _training_only(k)]
    if missing or unexpected:
        raise WeightsError(f"{pt}: the weights do not fit this code (missing {missing[:3]}, unexpected {unexpected[:3]})")
    model.eval()
    return model, model_id_for(cfg, expected)
