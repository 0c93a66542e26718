"""The reference speech enhancers by name (`codec eval --enhancers`), each run before our codec.

Nothing heavy is imported until one is made: the command line lists the names at once.
"""

from __future__ import annotations

from typing import Protocol

import numpy as np

from codec.errors import CodecError

ENHANCERS = ("deepfilternet3", "webrtc-ns")


class Enhancer(Protocol):
    """Whole mono float clips in, enhanced clips of the same length out, aligned with the input."""

    name: str

    def enhance(self, audio: np.ndarray, sample_rate: int = 16_000) -> np.ndarray: ...


def make_enhancer(name: str) -> Enhancer:
    """The runner of a reference enhancer; a missing package is a one-line CodecError."""
    if name == "deepfilternet3":
        from codec.baselines.deepfilternet import DeepFilterNet3

        return DeepFilterNet3()
    if name == "webrtc-ns":
        from codec.baselines.webrtc_ns import WebRtcNoiseSuppressor

        return WebRtcNoiseSuppressor()
    raise CodecError(f"unknown enhancer {name!r} (known: {', '.join(ENHANCERS)})")
