"""Writing a training checkpoint so that a run killed mid-write still resumes from the last one."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import torch


def save_atomically(state: dict[str, Any], path: Path) -> None:
    """`torch.save` to a sibling temporary file, then rename it over `path` (atomic on one filesystem)."""
    tmp = path.with_suffix(".tmp")
    torch.save(state, tmp)
    tmp.replace(path)
