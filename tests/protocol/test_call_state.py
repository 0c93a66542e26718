"""The call's state machine on a virtual clock: every transition, every message out of turn,
the set-up and idle timers; and a property test that no sequence of events (hostile input
included) raises or leaves the machine in a state it should not reach."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from protocol.call_state import (
    Accepted,
    CallEnded,
    CallState,
    FeedbackIn,
    Flow,
    HangUp,
    HelloIn,
    Malformed,
    MediaIn,
    OfferIn,
    Phase,
    Rejected,
    RemoteEnded,
    RemoteStarted,
    Role,
    Say,
    StopSending,
)
from protocol.feedback import encode_feedback
from protocol.messages import PROTOCOL_VERSION, Accept, Answer, Bye, EndOfStream, Feedback, Hello, Offer, Reject, Start, dump_message
from protocol.router import route

HELLO = Hello(protocol_version=PROTOCOL_VERSION, model_id="m-1", sample_rate=16000, frame_ms=20.0, max_layers=24, token="t")
WEBRTC_HELLO = HELLO.model_copy(update={"media": "webrtc"})
ACCEPT = Accept(protocol_version=PROTOCOL_VERSION, model_id="m-1", max_layers=12)
FEEDBACK = Feedback(highest_seq=3, received=3, loss_fraction=0.0, jitter_ms=1.0, buffer_ms=40.0, concealed_fraction=0.0)
MEDIA = b"\x10media"  # any binary that is not feedback is media to the machine (the incoming half decodes it)


def kinds(decisions: list) -> list[type]:
    return [type(d) for d in decisions]


def ended(decisions: list) -> str:
    (reason,) = [d.reason for d in decisions if isinstance(d, CallEnded)]
    return reason


def caller(hello: Hello = HELLO, t: float = 100.0) -> CallState:
    state = CallState(Role.CALLER, t, setup_timeout_s=12.0)
    assert state.send_hello(hello, t) == [Say(hello)]
    return state


def callee(hello: Hello = HELLO, t: float = 100.0) -> CallState:
    state = CallState(Role.CALLEE, t, setup_timeout_s=5.0, offer_timeout_s=10.0)
    assert state.on_message(hello, t + 0.1) == [HelloIn(hello)]
    return state


def in_call(receives: bool = True) -> CallState:
    return CallState.established(Role.CALLEE, 0.0, receives=receives)


# ---- set-up: the caller ----------------------------------------------------------------------------
def test_caller_hello_then_accept_establishes_the_call() -> None:
    state = caller()
    assert state.phase is Phase.HELLO_SENT and state.next_deadline() == 112.0
    assert state.on_message(ACCEPT, 100.2) == [Accepted(ACCEPT)]
    assert state.phase is Phase.ESTABLISHED and state.next_deadline() is None and state.sending is Flow.STREAMING


def test_caller_webrtc_waits_for_the_negotiation() -> None:
    state = caller(WEBRTC_HELLO)
    assert state.on_message(ACCEPT, 100.2) == [Accepted(ACCEPT)] and state.phase is Phase.OFFERING
    assert state.on_message(Answer(sdp="v=0"), 100.3) == []  # the transport's offer takes it
    assert state.negotiated(100.5) == [] and state.phase is Phase.ESTABLISHED


def test_caller_reject_ends_the_set_up_with_the_callees_reason_and_no_bye() -> None:
    state = caller()
    out = state.on_message(Reject(reason="wrong token"), 100.2)
    assert out == [CallEnded("wrong token")] and state.phase is Phase.ENDED
    assert state.finish("set-up failed") == [CallEnded("wrong token")] and state.phase is Phase.CLOSED


def test_caller_refuses_an_accept_for_another_model() -> None:
    state = caller()
    out = state.on_message(ACCEPT.model_copy(update={"model_id": "m-2"}), 100.2)
    assert "accepted with model m-2" in ended(out) and state.phase is Phase.ENDED


@pytest.mark.parametrize(
    "data, reason",
    [
        (MEDIA, "the other side answered hello with media"),
        ("{not json", "bad answer to hello: invalid control message"),
        (dump_message(Start()), "unexpected answer to hello: start"),
        (dump_message(HELLO), "unexpected answer to hello: hello"),
        (encode_feedback(FEEDBACK), "unexpected answer to hello: feedback"),
    ],
)
def test_caller_anything_but_an_answer_ends_the_set_up(data: bytes | str, reason: str) -> None:
    state = caller()
    out = route(state, data, 100.2)
    assert ended(out).startswith(reason) and not any(isinstance(d, Say) for d in out) and state.phase is Phase.ENDED


def test_caller_hello_timeout_on_a_virtual_clock() -> None:
    state = caller()
    assert state.on_timeout(111.9) == [] and state.phase is Phase.HELLO_SENT
    assert state.on_timeout(112.0) == [CallEnded("no answer to hello within 12 s")] and state.next_deadline() is None


def test_caller_link_closed_during_set_up() -> None:
    state = caller()
    assert state.on_link_closed("reset", 100.1) == [CallEnded("the other side closed the connection (reset)")]


def test_a_second_hello_is_refused_locally() -> None:
    state = caller()
    assert kinds(state.send_hello(HELLO, 100.1)) == [Rejected] and state.phase is Phase.HELLO_SENT
    assert kinds(CallState(Role.CALLEE).send_hello(HELLO, 0.0)) == [Rejected]


# ---- set-up: the callee ----------------------------------------------------------------------------
def test_callee_hello_then_accept_establishes_the_call() -> None:
    state = callee()
    assert state.phase is Phase.HELLO_RECEIVED and state.next_deadline() is None and state.hello == HELLO
    assert state.answer(ACCEPT, 100.2) == [Say(ACCEPT)] and state.phase is Phase.ESTABLISHED


def test_callee_webrtc_waits_for_the_offer_then_the_negotiation() -> None:
    state = callee(WEBRTC_HELLO)
    assert state.answer(ACCEPT, 100.2) == [Say(ACCEPT)] and state.phase is Phase.AWAIT_OFFER
    assert state.next_deadline() == pytest.approx(110.2)
    offer = Offer(sdp="v=0")
    assert state.on_message(offer, 100.4) == [OfferIn(offer)] and state.next_deadline() is None
    assert kinds(state.negotiated(100.6)) == [] and state.phase is Phase.ESTABLISHED
    assert kinds(state.negotiated(100.7)) == [Rejected]


def test_callee_offer_timeout_and_a_non_offer() -> None:
    state = callee(WEBRTC_HELLO)
    state.answer(ACCEPT, 100.2)
    assert state.on_timeout(110.1) == [] and state.on_timeout(110.2) == [CallEnded("no WebRTC offer within 10 s")]
    state = callee(WEBRTC_HELLO)
    state.answer(ACCEPT, 100.2)
    assert route(state, dump_message(Start()), 100.3) == [CallEnded("expected a WebRTC offer")]


@pytest.mark.parametrize("first", [MEDIA, dump_message(Start()), dump_message(ACCEPT), "{", encode_feedback(FEEDBACK), b"\xf1short"])
def test_callee_refuses_a_first_message_that_is_no_hello(first: bytes | str) -> None:
    state = CallState(Role.CALLEE, 0.0)
    reason = "expected a hello message first"
    assert route(state, first, 0.1) == [Say(Reject(reason=reason)), CallEnded(reason)] and state.phase is Phase.ENDED


def test_callee_hello_timeout_runs_from_creation() -> None:
    state = CallState(Role.CALLEE, 50.0, setup_timeout_s=5.0)
    assert state.next_deadline() == 55.0 and state.on_timeout(54.9) == []
    assert state.on_timeout(55.0) == [CallEnded("no hello within 5 s")]
    assert state.finish("x") == [CallEnded("no hello within 5 s")]  # never established: no bye


def test_callee_reject_and_refusal_say_why() -> None:
    state = callee()
    reject = Reject(reason="wrong token")
    assert state.answer(reject, 100.2) == [Say(reject), CallEnded("wrong token")]
    assert kinds(state.answer(ACCEPT, 100.3)) == [Rejected]  # answered already
    state = callee()
    assert state.refuse("busy", 100.2) == [Say(Reject(reason="busy")), CallEnded("busy")]
    state = CallState(Role.CALLEE)
    assert state.refuse("too many", 0.1)[0] == Say(Reject(reason="too many"))  # unheard: before any hello
    assert kinds(in_call().refuse("late", 1.0)) == [Rejected]
    assert kinds(caller().answer(ACCEPT, 1.0)) == [Rejected]


def test_callee_a_second_hello_before_the_answer_ends_the_set_up() -> None:
    state = callee()
    out = state.on_message(HELLO, 100.2)
    assert isinstance(out[0], Say) and "unexpected hello during set-up" in ended(out)


# ---- the call --------------------------------------------------------------------------------------
def test_each_direction_goes_start_media_eos() -> None:
    state = in_call()
    assert state.on_media(MEDIA, 1.0) == [MediaIn(MEDIA)]  # media may overtake its start (another path)
    assert state.on_message(Start(capture_epoch=5.0), 1.0) == [RemoteStarted(5.0)] and state.streaming
    assert state.on_message(FEEDBACK, 1.1) == [FeedbackIn(FEEDBACK)]
    assert state.on_message(EndOfStream(), 2.0) == [RemoteEnded("end of stream")] and not state.streaming
    assert state.on_media(MEDIA, 2.1) == [MediaIn(MEDIA)]  # trailing media still plays
    assert state.end_of_input() == [Say(EndOfStream())] and state.end_of_input() == []
    assert state.phase is Phase.ESTABLISHED  # both eos: the call ends when the playout is done (`finish`)
    assert state.finish("end of input") == [Say(Bye(reason="end of input")), CallEnded("end of input")]
    assert state.phase is Phase.CLOSED and state.finish("again") == []


@pytest.mark.parametrize(
    "messages, reason",
    [
        ([Start(), Start()], "a second start"),
        ([EndOfStream(), Start()], "start after eos"),
        ([EndOfStream(), EndOfStream()], "a second eos"),
        ([HELLO], "hello during the call"),
        ([ACCEPT], "accept during the call"),
        ([Offer(sdp="")], "offer during the call"),
        ([Reject(reason="no")], "reject during the call"),
    ],
)
def test_messages_out_of_turn_during_the_call_are_rejected_and_the_call_goes_on(messages: list, reason: str) -> None:
    state = in_call()
    *before, last = messages
    for m in before:
        state.on_message(m, 1.0)
    (out,) = state.on_message(last, 1.0)
    assert isinstance(out, Rejected) and out.reason.startswith(reason) and state.phase is Phase.ESTABLISHED


def test_bye_stops_our_stream_and_plays_out_theirs() -> None:
    state = in_call()
    out = state.on_message(Bye(reason="done"), 3.0)
    assert out == [StopSending(), RemoteEnded("bye (done)"), CallEnded("the other side hung up (done)")]
    assert state.phase is Phase.ENDED and state.on_media(MEDIA, 3.1) == [MediaIn(MEDIA)]
    assert kinds(state.on_message(Bye(), 3.2)) == [Rejected] and kinds(state.on_message(FEEDBACK, 3.2)) == [Rejected]
    assert state.finish("x") == [CallEnded("the other side hung up (done)")]  # no bye back


def test_without_an_incoming_half_a_bye_or_a_closed_link_hangs_up_at_once() -> None:
    assert kinds(in_call(receives=False).on_message(Bye(), 1.0))[-1] is HangUp
    assert kinds(in_call(receives=False).on_link_closed("gone", 1.0))[-1] is HangUp
    assert HangUp not in kinds(in_call().on_link_closed("gone", 1.0))


def test_a_closed_link_ends_the_call_and_no_bye_is_said() -> None:
    state = in_call()
    out = state.on_link_closed("reset", 2.0)
    assert out == [StopSending(), RemoteEnded("link closed (reset)"), CallEnded("link closed (reset)")]
    assert state.end_of_input() == [] and state.finish("x") == [CallEnded("link closed (reset)")]
    state = in_call()
    state.send_failed()  # our eos could not leave: the link is gone
    assert state.finish("x") == [CallEnded("x")]


def test_idle_timeout_on_a_virtual_clock() -> None:
    state = in_call()
    state.watch_idle(15.0, 10.0)
    assert state.next_deadline() == 25.0
    state.media_played(20.0)  # valid media restarts the timer
    assert state.on_timeout(34.9) == [] and state.phase is Phase.ESTABLISHED
    out = state.on_timeout(35.0)
    assert out == [StopSending(), RemoteEnded("no media for 15 s"), CallEnded("no media for 15 s"), HangUp()]
    assert state.next_deadline() is None
    assert state.finish("no media for 15 s") == [Say(Bye(reason="no media for 15 s")), CallEnded("no media for 15 s")]


def test_no_idle_timer_without_an_incoming_half_or_a_timeout() -> None:
    state = in_call(receives=False)
    state.watch_idle(15.0, 0.0)
    assert state.next_deadline() is None
    state = in_call()
    state.watch_idle(None, 0.0)
    state.media_played(1.0)
    assert state.next_deadline() is None and state.on_timeout(1e9) == []


def test_after_close_nothing_is_taken() -> None:
    state = in_call()
    state.finish("hang-up")
    assert kinds(state.on_message(Start(), 1.0)) == [Rejected] and kinds(state.on_media(MEDIA, 1.0)) == [Rejected]
    assert state.on_link_closed("x", 1.0) == [] and state.end_of_input() == []


def test_malformed_input_is_dropped_during_the_call() -> None:
    state = in_call()
    assert kinds(route(state, "{", 1.0)) == [Malformed] and kinds(route(state, b"\xf1short", 1.0)) == [Malformed]
    assert kinds(route(state, "x" * 9000, 1.0)) == [Malformed] and state.phase is Phase.ESTABLISHED


def test_the_router_parses_text_and_feedback_and_passes_media() -> None:
    state = in_call()
    (fb,) = route(state, encode_feedback(FEEDBACK), 1.0)
    assert isinstance(fb, FeedbackIn) and fb.feedback.buffer_ms == 40.0
    assert route(state, dump_message(Start(capture_epoch=2.0)), 1.0) == [RemoteStarted(2.0)]
    assert route(state, MEDIA, 1.0) == [MediaIn(MEDIA)]


# ---- any sequence ----------------------------------------------------------------------------------
VALID = [
    HELLO,
    WEBRTC_HELLO,
    ACCEPT,
    ACCEPT.model_copy(update={"model_id": "m-2"}),
    Reject(reason="r"),
    Offer(sdp="v=0"),
    Answer(),
    Start(capture_epoch=1.0),
    Start(),
    EndOfStream(),
    FEEDBACK,
    Bye(reason="b"),
    Bye(),
]
wire = st.one_of(
    st.sampled_from([dump_message(m) for m in VALID]),
    st.sampled_from([encode_feedback(FEEDBACK), MEDIA]),
    st.binary(max_size=40),
    st.text(max_size=40),
    st.just("x" * 9000),
)
event = st.one_of(
    st.tuples(st.just("wire"), wire),
    st.tuples(st.sampled_from(["timeout", "link", "eos", "finish", "hello", "negotiated", "played", "watch", "sendfail"]), st.none()),
    st.tuples(st.just("answer"), st.sampled_from([ACCEPT, Reject(reason="busy")])),
    st.tuples(st.just("refuse"), st.none()),
)


@settings(max_examples=120)
@given(st.sampled_from(Role), st.booleans(), st.lists(st.tuples(event, st.floats(0.0, 8.0)), max_size=20))
def test_any_sequence_leaves_the_machine_valid(role: Role, receives: bool, steps: list) -> None:
    state = CallState(role, 0.0, setup_timeout_s=5.0, offer_timeout_s=10.0, receives=receives)
    now, byes, was_established, over = 0.0, 0, False, False
    for (kind, arg), dt in steps:
        now += dt
        out = {
            "wire": lambda: route(state, arg, now),
            "timeout": lambda: state.on_timeout(now),
            "link": lambda: state.on_link_closed("gone", now),
            "eos": state.end_of_input,
            "finish": lambda: state.finish("done"),
            "hello": lambda: state.send_hello(HELLO, now),
            "negotiated": lambda: state.negotiated(now),
            "played": lambda: state.media_played(now) or [],
            "watch": lambda: state.watch_idle(3.0, now) or [],
            "sendfail": lambda: state.send_failed() or [],
            "answer": lambda: state.answer(arg, now),
            "refuse": lambda: state.refuse("no", now),
        }[kind]()
        assert isinstance(state.phase, Phase)
        was_established |= state.phase is Phase.ESTABLISHED
        said = [d.message for d in out if isinstance(d, Say)]
        byes += sum(isinstance(m, Bye) for m in said)
        assert all(isinstance(m, Bye) for m in said) or kind in ("hello", "answer", "refuse", "wire", "eos")
        assert not any(isinstance(d, Accepted) for d in out) or role is Role.CALLER
        assert not any(isinstance(d, (HelloIn, OfferIn)) for d in out) or role is Role.CALLEE
        assert all(d.reason for d in out if isinstance(d, CallEnded))
        if over:  # ended stays ended
            assert state.phase in (Phase.ENDED, Phase.CLOSED)
        if state.phase in (Phase.ENDED, Phase.CLOSED):
            over = True
            assert state.ended_by
        if state.phase is Phase.CLOSED:
            assert state.next_deadline() is None
    assert byes <= 1 and (byes == 0 or was_established)
