from __future__ import annotations

import pytest

from protocol.messages import Accept, Hello, Reject
from protocol.session import answer_hello


def hello(**over) -> Hello:
    fields = dict(protocol_version=1, model_id="m-1", sample_rate=16000, frame_ms=20.0, max_layers=24, token="secret")
    return Hello(**(fields | over))


def answer(h: Hello) -> Accept | Reject:
    return answer_hello(h, model_id="m-1", sample_rate=16000, frame_ms=20.0, max_layers=12, token="secret")


def test_accepts_and_agrees_on_layers() -> None:
    a = answer(hello())
    assert isinstance(a, Accept) and a.max_layers == 12


@pytest.mark.parametrize(
    "change, reason",
    [
        ({"token": "guess"}, "wrong token"),
        ({"protocol_version": 9}, "protocol version 9"),
        ({"model_id": "m-2"}, "model mismatch"),
        ({"sample_rate": 8000}, "sample rate"),
    ],
)
def test_rejects_with_a_reason(change: dict, reason: str) -> None:
    a = answer(hello(**change))
    assert isinstance(a, Reject) and reason in a.reason
