"""The README's Python example runs as written."""

from __future__ import annotations

import re
from pathlib import Path


def test_readme_python_example_runs() -> None:
    text = (Path(__file__).resolve().parents[1] / "README.md").read_text()
    blocks = re.findall(r"```python\n(.*?)```", text, flags=re.S)
    assert blocks, "the README has a Python example"
    scope: dict = {}
    exec(compile(blocks[0], "README.md", "exec"), scope)
    assert tuple(scope["audio"].shape) == (1, 320)
    assert len(scope["payload"]) == 15
