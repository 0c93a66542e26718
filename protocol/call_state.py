"""The call's state machine, sans-I/O: what has been said, what may come next, and what to do.

One `CallState` per connection and side, caller or callee. Events go in (a message received,
media received, a local step, a link that closed, a timeout), each with `now` passed in;
decisions come out (a message to say, stop sending, hand this to a half, the call ended and
why). Whoever owns the sockets applies the decisions and nothing else: the rules of the
call live here, unit-tested with a virtual clock.

    caller:  IDLE --hello--> HELLO_SENT --accept--> [OFFERING --negotiated-->] ESTABLISHED
    callee:  IDLE --hello--> HELLO_RECEIVED --answer(accept)--> [AWAIT_OFFER --offer, negotiated-->] ESTABLISHED
    ESTABLISHED --bye / link closed / idle timeout--> ENDED --finish--> CLOSED
    ESTABLISHED --finish (our bye)--> CLOSED

The brackets are WebRTC (a hello with media "webrtc"). A reject, a timeout or a message out of
turn during set-up ends the call (ENDED) with a reason; a callee that has not answered yet
says it in a reject. Once
established, each direction goes on by itself (`Flow`): start, media, eos. A message out of
turn then is dropped with a `Rejected` reason (the call goes on: it may be a confused peer, not
a broken one). Media is accepted whenever the call is established or ending: on WebRTC the data
channel and the websocket are separate paths, so media may overtake a start and trail an eos
or a bye, and what is in flight still plays.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from enum import Enum

from protocol.messages import Accept, Answer, Bye, EndOfStream, Feedback, Hello, Message, Offer, Reject, Start


class Role(Enum):
    CALLER = "caller"
    CALLEE = "callee"


class Phase(Enum):
    IDLE = "idle"
    HELLO_SENT = "hello sent"  # caller, waiting for accept or reject
    HELLO_RECEIVED = "hello received"  # callee, deciding its answer
    OFFERING = "offering"  # caller, accepted for WebRTC: offer and answer under way
    AWAIT_OFFER = "await offer"  # callee, accepted for WebRTC: the caller's offer is due
    ESTABLISHED = "established"
    ENDED = "ended"  # the call is over; buffered media still plays, our bye may be due
    CLOSED = "closed"  # nothing more is said


SETUP = frozenset({Phase.IDLE, Phase.HELLO_SENT, Phase.HELLO_RECEIVED, Phase.OFFERING, Phase.AWAIT_OFFER})


class Flow(Enum):
    """One direction's stream: start (optional: an empty source sends none), media, eos."""

    WAITING = "waiting"
    STREAMING = "streaming"
    ENDED = "ended"


# ---- decisions ---------------------------------------------------------------------------------
@dataclass(frozen=True)
class Say:
    """Send this control message."""

    message: Message


@dataclass(frozen=True)
class Accepted:
    """Caller: the callee accepted (the layers to use follow from `accept.max_layers`)."""

    accept: Accept


@dataclass(frozen=True)
class HelloIn:
    """Callee: a hello came; answer it with `CallState.answer`."""

    hello: Hello


@dataclass(frozen=True)
class OfferIn:
    """Callee: the caller's WebRTC offer; answer it, then `CallState.negotiated`."""

    offer: Offer


@dataclass(frozen=True)
class MediaIn:
    """A media packet for the incoming half (its bytes are decoded there)."""

    data: bytes


@dataclass(frozen=True)
class RemoteStarted:
    """The other side's stream begins; frame 0 was captured at `capture_epoch` (wall clock)."""

    capture_epoch: float | None


@dataclass(frozen=True)
class RemoteEnded:
    """No more media will come from the other side: play out what is buffered."""

    why: str


@dataclass(frozen=True)
class FeedbackIn:
    """The other side's receiver report about our stream: for rate control and the RTT."""

    feedback: Feedback


@dataclass(frozen=True)
class StopSending:
    pass


@dataclass(frozen=True)
class HangUp:
    """End the call now (no buffered media is waited for)."""


@dataclass(frozen=True)
class CallEnded:
    reason: str


@dataclass(frozen=True)
class Rejected:
    """A message or packet out of turn, dropped; the call goes on."""

    reason: str


@dataclass(frozen=True)
class Malformed:
    """Input that no parser accepts (the router's verdict), dropped and counted."""

    reason: str


Decision = Say | Accepted | HelloIn | OfferIn | MediaIn | RemoteStarted | RemoteEnded | FeedbackIn | StopSending | HangUp | CallEnded | Rejected | Malformed


@dataclass
class CallState:
    """`receives`: this side has an incoming half (without one, the call ends as soon as the
    other side hangs up or the link closes: nothing is left to play). Timeouts: `setup_timeout_s`
    for the first step (the callee's wait for a hello, the caller's for its answer),
    `offer_timeout_s` for the callee's wait for a WebRTC offer, and `idle_timeout_s`, once
    `watch_idle` is called, for valid media to keep coming."""

    role: Role
    created_at: float = 0.0  # the callee's hello timer runs from here
    setup_timeout_s: float = 5.0
    offer_timeout_s: float = 10.0
    receives: bool = True
    phase: Phase = Phase.IDLE
    sending: Flow = Flow.WAITING
    receiving: Flow = Flow.WAITING
    ended_by: str = ""
    hello: Hello | None = None
    bye_received: bool = False
    link_closed: bool = False
    idle_timeout_s: float | None = None
    _was_established: bool = field(default=False, init=False, repr=False)
    _deadline: float | None = field(default=None, init=False, repr=False)
    _deadline_reason: str = field(default="", init=False, repr=False)

    def __post_init__(self) -> None:
        if self.phase is Phase.ESTABLISHED:
            self._establish()
        elif self.role is Role.CALLEE and self.phase is Phase.IDLE:
            self._set_deadline(self.created_at + self.setup_timeout_s, f"no hello within {self.setup_timeout_s:g} s")

    @classmethod
    def established(cls, role: Role, now: float, receives: bool = True) -> CallState:
        """A call whose set-up happened elsewhere (a session built on a connection already accepted)."""
        return cls(role, now, receives=receives, phase=Phase.ESTABLISHED)

    # ---- queries ---------------------------------------------------------------------------------
    @property
    def in_setup(self) -> bool:
        return self.phase in SETUP

    @property
    def streaming(self) -> bool:
        """The other side's stream has started and not ended."""
        return self.phase is Phase.ESTABLISHED and self.receiving is Flow.STREAMING

    def next_deadline(self) -> float | None:
        """When `on_timeout` should next be called (None: no timer runs)."""
        return self._deadline

    # ---- set-up ----------------------------------------------------------------------------------
    def send_hello(self, hello: Hello, now: float) -> list[Decision]:
        if self.role is not Role.CALLER or self.phase is not Phase.IDLE:
            return [Rejected(f"a {self.role.value} in phase {self.phase.value} cannot say hello")]
        self.hello, self.phase = hello, Phase.HELLO_SENT
        self._set_deadline(now + self.setup_timeout_s, f"no answer to hello within {self.setup_timeout_s:g} s")
        return [Say(hello)]

    def answer(self, answer: Accept | Reject, now: float) -> list[Decision]:
        """Callee: say the answer to the hello (`protocol.session.answer_hello`, or a reject of the callee's own: busy)."""
        if self.role is not Role.CALLEE or self.phase is not Phase.HELLO_RECEIVED:
            return [Rejected(f"a {self.role.value} in phase {self.phase.value} has no hello to answer")]
        if isinstance(answer, Reject):
            return [Say(answer), *self._end(answer.reason)]
        assert self.hello is not None
        if self.hello.media == "webrtc":
            self.phase = Phase.AWAIT_OFFER
            self._set_deadline(now + self.offer_timeout_s, f"no WebRTC offer within {self.offer_timeout_s:g} s")
        else:
            self._establish()
        return [Say(answer)]

    def refuse(self, reason: str, now: float) -> list[Decision]:
        """Callee: refuse instead of answering (too many failed hellos from an address, busy)."""
        if self.role is not Role.CALLEE or self.phase not in (Phase.IDLE, Phase.HELLO_RECEIVED):
            return [Rejected(f"a {self.role.value} in phase {self.phase.value} has nothing to refuse")]
        return [Say(Reject(reason=reason[:512])), *self._end(reason)]

    def negotiated(self, now: float) -> list[Decision]:
        """The WebRTC offer and answer are done (whatever the media path became)."""
        if self.phase not in (Phase.OFFERING, Phase.AWAIT_OFFER):
            return [Rejected(f"phase {self.phase.value}: no offer under way")]
        self._establish()
        return []

    # ---- input -----------------------------------------------------------------------------------
    def on_message(self, message: Message, now: float) -> list[Decision]:
        if self.phase in SETUP:
            return self._setup_message(message)
        if self.phase is Phase.CLOSED:
            return [Rejected(f"{message.type} after the call closed")]
        if isinstance(message, Bye):
            return self._on_bye(message)
        if self.phase is Phase.ENDED:
            return [Rejected(f"{message.type} after the call ended")]
        if isinstance(message, Start):
            if self.receiving is not Flow.WAITING:
                return [Rejected("a second start" if self.receiving is Flow.STREAMING else "start after eos")]
            self.receiving = Flow.STREAMING
            return [RemoteStarted(message.capture_epoch)]
        if isinstance(message, EndOfStream):
            if self.receiving is Flow.ENDED:
                return [Rejected("a second eos")]
            self.receiving = Flow.ENDED
            return [RemoteEnded("end of stream")]
        if isinstance(message, Feedback):
            return [FeedbackIn(message)]
        return [Rejected(f"{message.type} during the call (set-up is over)")]

    def on_media(self, data: bytes, now: float) -> list[Decision]:
        if self.phase in (Phase.ESTABLISHED, Phase.ENDED):
            return [MediaIn(data)]
        if self.phase in SETUP:
            return self._setup_violation("media", "media")
        return [Rejected("media after the call closed")]

    def send_failed(self) -> None:
        """A message could not be sent: the link is gone (the reader will hear why); no bye is due."""
        self.link_closed = True

    def media_played(self, now: float) -> None:
        """A media packet was valid (the incoming half took it): the idle timer restarts."""
        if self.idle_timeout_s is not None and self.phase is Phase.ESTABLISHED:
            self._set_deadline(now + self.idle_timeout_s, f"no media for {self.idle_timeout_s:g} s")

    def on_malformed(self, reason: str, now: float) -> list[Decision]:
        """Input no parser accepts: during set-up it ends the call, later it is dropped."""
        if self.phase in SETUP:
            return self._setup_violation("malformed", reason)
        return [Malformed(reason)]

    def on_timeout(self, now: float) -> list[Decision]:
        if self._deadline is None or now < self._deadline:
            return []
        reason = self._deadline_reason
        if self.phase is Phase.ESTABLISHED:  # idle: what is buffered is not waited for
            return self._remote_gone(reason, reason, hang_up=True)
        return self._end(reason)

    def on_link_closed(self, why: str, now: float) -> list[Decision]:
        """The connection broke or closed: nothing more can be said; what is buffered plays."""
        self.link_closed = True
        if self.phase in SETUP:
            return self._end(f"the other side closed the connection ({why})")
        if self.phase is Phase.CLOSED:
            return []
        reason = f"link closed ({why})"
        return self._remote_gone(reason, reason, hang_up=not self.receives)

    # ---- local steps -----------------------------------------------------------------------------
    def watch_idle(self, timeout_s: float | None, now: float) -> None:
        """From now, a call without valid media for `timeout_s` ends (None: never)."""
        self.idle_timeout_s = timeout_s if self.receives else None
        self.media_played(now)

    def end_of_input(self) -> list[Decision]:
        """Our source ended: say eos (the call goes on while the other direction plays)."""
        if self.phase not in (Phase.ESTABLISHED, Phase.ENDED) or self.sending is Flow.ENDED:
            return []
        self.sending = Flow.ENDED
        return [] if self.link_closed else [Say(EndOfStream())]

    def finish(self, reason: str) -> list[Decision]:
        """We are done (both halves, a hang-up, an error): bye, unless the other side said it,
        the link is gone or the call never got past set-up. The machine is closed afterwards."""
        if self.phase is Phase.CLOSED:
            return []
        reason = reason or "call ended"
        said_bye = self._was_established and not self.bye_received and not self.link_closed
        out: list[Decision] = [Say(Bye(reason=reason[:512]))] if said_bye else []
        out += self._end(reason)
        self.phase = Phase.CLOSED
        return out

    # ---- internals -------------------------------------------------------------------------------
    def _setup_message(self, message: Message) -> list[Decision]:
        if self.phase is Phase.IDLE and self.role is Role.CALLEE and isinstance(message, Hello):
            self.hello, self.phase, self._deadline = message, Phase.HELLO_RECEIVED, None
            return [HelloIn(message)]
        if self.phase is Phase.HELLO_SENT and isinstance(message, Reject):
            return self._end(message.reason)
        if self.phase is Phase.HELLO_SENT and isinstance(message, Accept):
            assert self.hello is not None
            if message.model_id != self.hello.model_id or message.bits_per_stage != self.hello.bits_per_stage:
                return self._end(
                    f"the other side accepted with model {message.model_id} ({message.bits_per_stage} bits a stage), this side has {self.hello.model_id}"
                )
            if self.hello.media == "webrtc":
                self.phase, self._deadline = Phase.OFFERING, None  # the transport's offer has its own timeout
            else:
                self._establish()
            return [Accepted(message)]
        if self.phase is Phase.AWAIT_OFFER and isinstance(message, Offer):
            self._deadline = None
            return [OfferIn(message)]
        if self.phase is Phase.OFFERING and isinstance(message, Answer):
            return []  # the transport's offer takes its answer itself
        return self._setup_violation("message", message.type)

    def _setup_violation(self, kind: str, detail: str) -> list[Decision]:
        """Anything out of turn during set-up ends the call with the step's reason; a callee
        that has not answered yet says it (a reject), others just go."""
        if self.phase is Phase.HELLO_SENT:
            reason = {"media": "the other side answered hello with media", "malformed": f"bad answer to hello: {detail}"}.get(
                kind, f"unexpected answer to hello: {detail}"
            )
        elif self.phase is Phase.IDLE and self.role is Role.CALLEE:
            reason = "expected a hello message first"
        elif self.phase is Phase.AWAIT_OFFER:
            reason = "expected a WebRTC offer"
        else:
            reason = f"unexpected {detail} during set-up ({self.phase.value})"
        if self.role is Role.CALLEE and self.phase in (Phase.IDLE, Phase.HELLO_RECEIVED):
            return [Say(Reject(reason=reason)), *self._end(reason)]
        return self._end(reason)

    def _on_bye(self, message: Bye) -> list[Decision]:
        if self.bye_received:
            return [Rejected("a second bye")]
        self.bye_received = True
        self.receiving = Flow.ENDED
        why = f"bye ({message.reason})" if message.reason else "bye"
        reason = f"the other side hung up ({message.reason})" if message.reason else "the other side hung up"
        return self._remote_gone(why, reason, hang_up=not self.receives)  # ended already: its reason stands

    def _remote_gone(self, why: str, reason: str, hang_up: bool) -> list[Decision]:
        """The other side is gone (bye, closed link, idle): stop sending, end the incoming stream
        with `why` and the call with `reason`; `hang_up`: do not wait for what is buffered."""
        out: list[Decision] = [StopSending(), RemoteEnded(why), *self._end(reason)]
        return [*out, HangUp()] if hang_up else out

    def _establish(self) -> None:
        self.phase, self.sending, self._was_established = Phase.ESTABLISHED, Flow.STREAMING, True
        self._deadline = None

    def _end(self, reason: str) -> list[Decision]:
        if self.phase not in (Phase.ENDED, Phase.CLOSED):
            self.ended_by = self.ended_by or reason
            self.phase = Phase.ENDED
            self._deadline = None
        return [CallEnded(self.ended_by or reason)]

    def _set_deadline(self, at: float, reason: str) -> None:
        self._deadline, self._deadline_reason = at, reason
