"""The call's keys and status line: `d` switches denoising (only for a model with the switch;
otherwise it says so, once a press), `m` mutes, `q` hangs up; `dn on/off` shows the switch."""

from __future__ import annotations

from types import SimpleNamespace

from call.console import SessionRef, keys_hint, on_key, status_text
from call.session import CallSession
from tests.fakes import CFG, FakeTransport
from transmitter.sender import Transmitter

CFG_WITH_SWITCH = SimpleNamespace(**vars(CFG), denoise_conditioning=True)


def _ref(cfg: SimpleNamespace, denoise: bool = False) -> SessionRef:
    tx = Transmitter(SimpleNamespace(cfg=cfg), "m-1", layers=6, denoise=denoise)  # type: ignore[arg-type]
    session = CallSession(FakeTransport(), tx, source=SimpleNamespace(start_at=None))  # type: ignore[arg-type]
    return SessionRef(session, denoise)


async def test_d_switches_denoising_and_the_status_line_shows_it() -> None:
    ref, said = _ref(CFG_WITH_SWITCH), []
    tx = ref.session.outgoing  # type: ignore[union-attr]
    assert tx is not None and status_text(ref.session).endswith("| dn off")  # type: ignore[arg-type]
    on_key("d", ref, said.append)
    assert tx.denoise and ref.denoise and status_text(ref.session).endswith("| dn on")  # type: ignore[arg-type]
    on_key("d", ref, said.append)
    assert not tx.denoise and not ref.denoise and said == []
    on_key("m", ref, said.append)
    assert tx.muted and not tx.denoise  # the keys are independent
    assert keys_hint(True) == "m: mute, d: denoise, q: hang up"


async def test_d_without_the_switch_says_so_and_changes_nothing() -> None:
    ref, said = _ref(CFG), []
    tx = ref.session.outgoing  # type: ignore[union-attr]
    assert tx is not None and "dn " not in status_text(ref.session)  # type: ignore[arg-type]
    on_key("d", ref, said.append)
    assert said == ["d: model m-1 has no denoise switch"] and not tx.denoise and not ref.denoise
    assert "d:" not in keys_hint(False)


async def test_keys_without_a_call_or_unknown_keys_do_nothing() -> None:
    said: list[str] = []
    on_key("d", SessionRef(), said.append)  # a listener between calls
    ref = _ref(CFG_WITH_SWITCH)
    on_key("x", ref, said.append)
    assert said == [] and not ref.session.outgoing.denoise  # type: ignore[union-attr]
    on_key("q", ref, said.append)
    assert ref.session.ended_by == "hang-up"  # type: ignore[union-attr]
