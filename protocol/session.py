"""The call handshake as pure code: is this hello acceptable, and if not, why."""

from __future__ import annotations

import hmac

from protocol.messages import PROTOCOL_VERSION, Accept, Hello, Reject


def answer_hello(hello: Hello, model_id: str, sample_rate: int, frame_ms: float, max_layers: int, token: str, bits_per_stage: int = 10) -> Accept | Reject:
    """The callee's answer: the first mismatch found is the reason given to both sides."""
    if hello.protocol_version != PROTOCOL_VERSION:
        return Reject(reason=f"protocol version {hello.protocol_version} is not supported (this side speaks {PROTOCOL_VERSION})")
    if token and not hmac.compare_digest(hello.token.encode(), token.encode()):
        return Reject(reason="wrong token")
    if hello.model_id != model_id:
        return Reject(reason=f"codec model mismatch: caller has {hello.model_id}, callee has {model_id}")
    if hello.bits_per_stage != bits_per_stage:
        return Reject(reason=f"quantizer stage size mismatch: caller codes {hello.bits_per_stage} bits a stage, callee {bits_per_stage}")
    if hello.sample_rate != sample_rate or abs(hello.frame_ms - frame_ms) > 1e-6:
        return Reject(reason="sample rate or frame length mismatch")
    return Accept(protocol_version=PROTOCOL_VERSION, model_id=model_id, max_layers=min(max_layers, hello.max_layers), bits_per_stage=bits_per_stage)


class FailedHelloLimit:
    """Failed hellos per address (sans-I/O: `now` is passed in): after `max_failures` within
    `window_s`, an address is refused without its token being checked until the window has
    passed (a token cannot be guessed at the rate a socket can send). At most `max_addresses`
    are remembered (the oldest forgotten first): a flood from many addresses costs bounded memory."""

    def __init__(self, max_failures: int = 5, window_s: float = 60.0, max_addresses: int = 4096) -> None:
        self.max_failures = max_failures
        self.window_s = window_s
        self.max_addresses = max_addresses
        self._failures: dict[str, list[float]] = {}  # address -> times of its recent failures, oldest first

    def _recent(self, address: str, now: float) -> list[float]:
        times = [t for t in self._failures.get(address, ()) if now - t < self.window_s]
        if times:
            self._failures[address] = times
        else:
            self._failures.pop(address, None)
        return times

    def blocked(self, address: str, now: float) -> bool:
        return len(self._recent(address, now)) >= self.max_failures

    def failed(self, address: str, now: float) -> None:
        times = self._recent(address, now)[-(self.max_failures - 1) :] if self.max_failures > 1 else []
        self._failures.pop(address, None)
        self._failures[address] = [*times, now]  # re-inserted: dict order is recency
        while len(self._failures) > self.max_addresses:
            del self._failures[next(iter(self._failures))]
