"""The call handshake as pure code: is this hello acceptable, and if not, why."""

from __future__ import annotations

import hmac

from protocol.messages import PROTOCOL_VERSION, Accept, Hello, Reject


def answer_hello(hello: Hello, model_id: str, sample_rate: int, frame_ms: float, max_layers: int, token: str) -> Accept | Reject:
    """The callee's answer: the first mismatch found is the reason given to both sides."""
    if hello.protocol_version != PROTOCOL_VERSION:
        return Reject(reason=f"protocol version {hello.protocol_version} is not supported (this side speaks {PROTOCOL_VERSION})")
    if token and not hmac.compare_digest(hello.token.encode(), token.encode()):
        return Reject(reason="wrong token")
    if hello.model_id != model_id:
        return Reject(reason=f"codec model mismatch: caller has {hello.model_id}, callee has {model_id}")
    if hello.sample_rate != sample_rate or abs(hello.frame_ms - frame_ms) > 1e-6:
        return Reject(reason="sample rate or frame length mismatch")
    return Accept(protocol_version=PROTOCOL_VERSION, model_id=model_id, max_layers=min(max_layers, hello.max_layers))
