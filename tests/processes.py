"""Test helper for tests that run the CLI as a separate process: the `ssvoip listen` command line."""

from __future__ import annotations

import sys


def listen_command(port: int, *options: str) -> list[str]:
    """`python -m ssvoip listen` on 127.0.0.1:`port`, followed by the test's own `options`."""
    return [sys.executable, "-m", "ssvoip", "listen", "--host", "127.0.0.1", "--port", str(port), *options]
