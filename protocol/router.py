"""The one place where what a connection delivers is told apart and handed to the call's state
machine: text is a control message (parsed, size-limited), binary is feedback (the receiver's
report, its own format) or media. Whatever no parser accepts becomes the machine's
`on_malformed` (during set-up that ends the call; later a `Malformed` decision, counted and
dropped): nothing a peer sends raises here.

The readers (`call.session.CallSession`, `transmitter.sender.Transmitter`, the listener's and
the caller's handshakes) only move bytes: they call `route` and apply the decisions.
"""

from __future__ import annotations

from protocol.call_state import CallState, Decision
from protocol.feedback import decode_feedback, is_feedback
from protocol.messages import MessageError, parse_message
from protocol.packets import PacketError


def route(state: CallState, data: bytes | str, now: float) -> list[Decision]:
    """One message or packet from the connection, `now` on the reader's clock."""
    if isinstance(data, bytes):
        if not is_feedback(data):
            return state.on_media(data, now)
        try:
            return state.on_message(decode_feedback(data), now)
        except PacketError as exc:
            return state.on_malformed(str(exc), now)
    try:
        message = parse_message(data)
    except MessageError as exc:
        return state.on_malformed(str(exc), now)
    return state.on_message(message, now)
