"""The page's own tests (`node --test web/test/`: its protocol on the shared vectors, its RVQ and jitter buffer), run by pytest too."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import pytest

WEB = Path(__file__).resolve().parents[2] / "web"


@pytest.mark.skipif(shutil.which("node") is None, reason="no Node.js (apt-get install nodejs)")
def test_the_pages_javascript_tests_pass() -> None:
    done = subprocess.run(["node", "--test", "test/"], cwd=WEB, capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-2000:]
