"""The shipped models: weights inside the package, checked before use.

A model is two files in a folder: `<name>.pt` (config + state dict) and `<name>.json` (its
config, sha256 and model id). The config names the model's family (`codec.config`), which
picks the network: `ssc` (the project's own trainable design, `codec.model.Codec`) or
`soundstream` (`codec.soundstream.SoundStreamCodec`, the default: Lyra v2's weights). Loading
verifies the checksum, that the config parses for this code, and that every tensor fits; any
failure is a WeightsError with one line saying which.

A model derived from another by adding tensors (the denoise switch on a frozen base) can ship
as an overlay (`save_overlay`): its `.pt` holds its config and only the tensors the base lacks,
and its description names the base (`overlay_on`: name and sha256, in the same folder); loading
verifies both files and lays the overlay's tensors over the base's. `available_models()` is the registry
that `python -m codec models` and every `--model` option read.
"""

from __future__ import annotations

import hashlib
import io
import json
from pathlib import Path

import torch
from pydantic import ValidationError

from codec.config import AnyCodecConfig, parse_config
from codec.errors import WeightsError
from codec.model import Codec
from codec.soundstream import SoundStreamCodec

WEIGHTS_DIR = Path(__file__).parent / "weights"
# Lyra v2's weights with residual stages fitted by this project after its 46 (docs/models.md).
DEFAULT_MODEL = "soundstream16k-lyra2x"

AnyCodec = Codec | SoundStreamCodec


def build_model(cfg: AnyCodecConfig) -> AnyCodec:
    """An untrained network of the config's family."""
    return SoundStreamCodec(cfg) if cfg.family == "soundstream" else Codec(cfg)


def available_models(folder: Path | None = None) -> list[str]:
    """The names of the models in `folder` (the shipped ones by default), default first."""
    names = sorted(p.stem for p in (folder or WEIGHTS_DIR).glob("*.json") if p.with_suffix(".pt").is_file())
    return sorted(names, key=lambda n: n != DEFAULT_MODEL)


def describe_model(name: str, folder: Path | None = None) -> dict:
    """The model's description file (id, sha256, config) without loading its weights."""
    path = (folder or WEIGHTS_DIR) / f"{name}.json"
    try:
        return json.loads(path.read_text())
    except (OSError, ValueError):
        raise WeightsError(f"{path}: unreadable model description") from None


def _sha256(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def model_name_for_id(model_id: str | None, folder: Path | None = None) -> str | None:
    """The name of the shipped model with this id, if one is."""
    for name in available_models(folder):
        try:
            if describe_model(name, folder).get("model_id") == model_id:
                return name
        except WeightsError:
            continue
    return None


def model_id_for(cfg: AnyCodecConfig, digest: str) -> str:
    return f"{cfg.name}-{digest[:10]}"


# Buffers only training needs (EMA statistics of the codebooks): not shipped.
_TRAINING_ONLY = ("cluster_size", "code_sum", "window_usage", "window_seen")


def _training_only(key: str) -> bool:
    return key.rsplit(".", 1)[-1] in _TRAINING_ONLY


def save_model(model: AnyCodec, folder: Path, name: str | None = None, dtype: torch.dtype = torch.float16, extra: dict | None = None) -> str:
    """Write a model for shipping (float16 tensors unless `dtype` says otherwise); returns its
    model id. The files are named after the config unless `name` says otherwise; `extra` goes
    into the description file (provenance, for instance)."""
    name = name or model.cfg.name
    folder.mkdir(parents=True, exist_ok=True)
    state = {k: (v.to(dtype) if v.is_floating_point() else v) for k, v in model.state_dict().items() if not _training_only(k)}
    buffer = io.BytesIO()
    torch.save({"config": model.cfg.model_dump(), "state": state}, buffer)
    data = buffer.getvalue()
    digest = _sha256(data)
    model_id = model_id_for(model.cfg, digest)
    (folder / f"{name}.pt").write_bytes(data)
    meta = {"model_id": model_id, "sha256": digest, "config": model.cfg.model_dump()} | (extra or {})
    (folder / f"{name}.json").write_text(json.dumps(meta, indent=1) + "\n")
    return model_id


def save_overlay(model: AnyCodec, folder: Path, name: str, base: str, extra: dict | None = None) -> str:
    """Write `model` as an overlay on the model `base` of `folder`: the tensors `base` lacks
    (float32) and the model's config; returns its model id. Every tensor the two share must be
    the base's exactly (the overlay does not carry them)."""
    base_model, _ = load_model(folder, base)
    base_state = base_model.state_dict()
    state = {}
    for key, value in model.state_dict().items():
        if _training_only(key):
            continue
        if key not in base_state:
            state[key] = value.float() if value.is_floating_point() else value
        elif not torch.equal(value, base_state[key]):
            raise ValueError(f"{key} differs from {base}'s: an overlay carries only new tensors")
    buffer = io.BytesIO()
    torch.save({"config": model.cfg.model_dump(), "state": state}, buffer)
    data = buffer.getvalue()
    digest = _sha256(data)
    model_id = model_id_for(model.cfg, digest)
    (folder / f"{name}.pt").write_bytes(data)
    base_digest = describe_model(base, folder)["sha256"]
    meta = {"model_id": model_id, "sha256": digest, "config": model.cfg.model_dump(), "overlay_on": {"name": base, "sha256": base_digest}} | (extra or {})
    (folder / f"{name}.json").write_text(json.dumps(meta, indent=1) + "\n")
    return model_id


def _verified_blob(folder: Path, name: str) -> tuple[dict, dict, str]:
    """(the .pt's contents, the description, the sha256) of model `name`, its checksum verified."""
    pt, meta_path = folder / f"{name}.pt", folder / f"{name}.json"
    if not pt.is_file() or not meta_path.is_file():
        known = ", ".join(available_models(folder)) or "none"
        raise WeightsError(f"no model '{name}' in {folder} (models there: {known})")
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
    except RuntimeError as exc:
        raise WeightsError(f"{pt}: unreadable weights ({str(exc).splitlines()[0]})") from None
    return blob, meta, expected


def _state_of(folder: Path, name: str, blob: dict, meta: dict) -> dict[str, torch.Tensor]:
    """The model's tensors: its own, laid over its base's if it is an overlay."""
    state = dict(blob["state"])
    overlay = meta.get("overlay_on")
    if overlay is None:
        return state
    try:
        base_name, base_digest = overlay["name"], overlay["sha256"]
    except (TypeError, KeyError):
        raise WeightsError(f"{folder / name}.json: unreadable overlay_on (needs name and sha256)") from None
    base_blob, base_meta, digest = _verified_blob(folder, base_name)
    if digest != base_digest or "overlay_on" in base_meta:
        raise WeightsError(f"{folder / name}.pt: overlays {base_name} {base_digest[:10]}, but {folder} has {base_name} {digest[:10]}")
    return dict(base_blob["state"]) | state


def load_model(folder: Path | None = None, name: str | None = None) -> tuple[AnyCodec, str]:
    """Load and verify a model; returns (model in eval mode, model id).

    Without a name: the default model of the shipped ones, or the only model of `folder`."""
    if name is None:
        found = available_models(folder) if folder is not None else []
        name = found[0] if len(found) == 1 else DEFAULT_MODEL
    folder = folder or WEIGHTS_DIR
    pt = folder / f"{name}.pt"
    blob, meta, expected = _verified_blob(folder, name)
    try:
        cfg = parse_config(blob["config"])
    except (ValidationError, ValueError, KeyError, RuntimeError) as exc:
        raise WeightsError(f"{pt}: the model's config does not fit this code ({str(exc).splitlines()[0]})") from None
    model = build_model(cfg)
    try:
        state = {k: v.float() if v.is_floating_point() else v for k, v in _state_of(folder, name, blob, meta).items()}
        missing, unexpected = model.load_state_dict(state, strict=False)
    except (RuntimeError, AttributeError, KeyError) as exc:
        raise WeightsError(f"{pt}: the weights do not fit this code ({str(exc).splitlines()[0]})") from None
    missing = [k for k in missing if not _training_only(k)]
    if missing or unexpected:
        raise WeightsError(f"{pt}: the weights do not fit this code (missing {missing[:3]}, unexpected {unexpected[:3]})")
    model.eval()
    return model, model_id_for(cfg, expected)
