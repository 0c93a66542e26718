"""The Python API example (docs/codec.md, linked from the README) runs as written."""

from __future__ import annotations

import re
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def test_the_python_api_example_runs() -> None:
    assert "docs/codec.md#python-api" in (ROOT / "README.md").read_text(), "the README links the example"
    text = (ROOT / "docs" / "codec.md").read_text()
    blocks = re.findall(r"## Python API\n.*?```python\n(.*?)```", text, flags=re.S)
    assert blocks, "docs/codec.md has a Python API example"
    scope: dict = {}
    exec(compile(blocks[0], "docs/codec.md", "exec"), scope)
    assert tuple(scope["audio"].shape) == (1, 320)
    assert len(scope["payload"]) == 15
