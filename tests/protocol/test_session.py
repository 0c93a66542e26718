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
        ({"bits_per_stage": 4}, "stage size mismatch"),
    ],
)
def test_rejects_with_a_reason(change: dict, reason: str) -> None:
    a = answer(hello(**change))
    assert isinstance(a, Reject) and reason in a.reason


def test_failed_hellos_are_limited_per_address() -> None:
    from protocol.session import FailedHelloLimit

    limit = FailedHelloLimit(max_failures=3, window_s=10.0, max_addresses=100)
    for t in range(3):
        assert not limit.blocked("10.0.0.1", float(t))
        limit.failed("10.0.0.1", float(t))
    assert limit.blocked("10.0.0.1", 3.0) and not limit.blocked("10.0.0.2", 3.0)
    assert not limit.blocked("10.0.0.1", 12.5)  # the window passed
    for i in range(1000):  # many addresses: bounded memory
        limit.failed(f"10.1.{i // 256}.{i % 256}", 20.0)
    assert len(limit._failures) <= 100
