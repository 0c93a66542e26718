"""The terminal side of a call: a live status line for both directions, and the keyboard.

The status line is redrawn twice a second by its own task (nothing per frame):

    -> 6.0 kbps 12 L rtt 3 ms loss 0.0% | <- 6.1 kbps 12.0 L loss 0.0% jit 0.4 ms buf 40 ms conc 0.0% | mic -23 dB | dn on

(`dn on`/`dn off`: the send path's denoise switch, shown only when the model has one.)
Keys (when stdin is a terminal; read in cbreak mode, restored on exit): `m` mutes and
unmutes the microphone, `d` switches denoising on and off (from the next frame), `q` hangs up.
"""

from __future__ import annotations

import asyncio
import contextlib
import sys
from collections.abc import Callable
from dataclasses import dataclass
from typing import Iterator, TextIO

from call.session import CallSession


def status_text(session: CallSession) -> str:
    parts = []
    out, inc = session.outgoing, session.incoming
    if out is not None:
        s = out.stats
        seconds = max(s.wall_seconds, 0.02 * max(1, s.frames)) if s.frames else 1.0
        kbps = 8 * s.bytes / seconds / 1000
        rtt = f"{s.rtt_ms:4.0f} ms" if s.rtt_ms is not None else "  - ms"
        loss = f"{100 * s.last_feedback.loss_fraction:4.1f}%" if s.last_feedback else "  - %"
        parts.append(f"-> {kbps:4.1f} kbps {s.layers:2d} L rtt {rtt} loss {loss}")
    if inc is not None:
        r = inc.snapshot()
        parts.append(
            f"<- {r.packet_kbps:4.1f} kbps {r.layers_mean:4.1f} L loss {100 * r.loss_fraction:4.1f}% "
            f"jit {r.jitter_ms:4.1f} ms buf {inc.playout.level_ms:4.0f} ms conc {100 * r.concealed_fraction:4.1f}%"
        )
    if out is not None:
        meter = f"mic {out.stats.level_dbfs:4.0f} dB"
        parts.append(meter + (" MUTED" if out.muted else ""))
        if out.has_denoise:
            parts.append(f"dn {'on' if out.denoise else 'off'}")
        from transmitter.frontend import find_front_end

        front_end = find_front_end(session.source)
        if front_end is not None:
            parts.append(front_end.status_text())  # the echo suppression achieved (ERLE) and the cost per frame
    return " | ".join(parts)


async def show_status(session: CallSession, stream: TextIO = sys.stderr, every_s: float = 0.5) -> None:
    """Redraw the status line until cancelled."""
    try:
        while True:
            await asyncio.sleep(every_s)
            print("\r" + status_text(session) + "\x1b[K", end="", file=stream, flush=True)
    finally:
        print(file=stream, flush=True)


def keys_hint(has_denoise: bool) -> str:
    """The keys a call takes, for the line that says the call is up."""
    return "m: mute, d: denoise, q: hang up" if has_denoise else "m: mute, q: hang up"


def on_key(key: str, session_ref: "SessionRef", say: Callable[[str], None]) -> None:
    """One key of a call: m = mute/unmute, d = denoise on/off, q = hang up; others are ignored.
    `say` gets a line for the user (a key the call cannot honour)."""
    session = session_ref.session
    if session is None:
        return
    out = session.outgoing
    if key == "m" and out is not None:
        out.muted = not out.muted
    elif key == "d" and out is not None:
        if out.has_denoise:
            out.denoise = session_ref.denoise = not out.denoise  # the next frame is encoded with it
        else:
            say(f"d: model {out.model_id} has no denoise switch")
    elif key == "q":
        session.hang_up("hang-up")


def _say_above_status(line: str, stream: TextIO = sys.stderr) -> None:
    """A line in place of the status line (redrawn below it on its next tick)."""
    print("\r" + line + "\x1b[K", file=stream, flush=True)


@contextlib.contextmanager
def keyboard(session_ref: "SessionRef") -> Iterator[None]:
    """Single keys from a terminal (`on_key`). A no-op without a terminal."""
    if not sys.stdin.isatty():
        yield
        return
    import termios
    import tty

    fd = sys.stdin.fileno()
    saved = termios.tcgetattr(fd)
    loop = asyncio.get_running_loop()

    def read_key() -> None:
        on_key(sys.stdin.read(1).lower(), session_ref, _say_above_status)

    tty.setcbreak(fd)
    loop.add_reader(fd, read_key)
    try:
        yield
    finally:
        loop.remove_reader(fd)
        termios.tcsetattr(fd, termios.TCSADRAIN, saved)


@dataclass
class SessionRef:
    """The call in progress, if any (a listener's changes from call to call), and the denoise
    switch the next call starts with (`--denoise`, then as the `d` key left it)."""

    session: CallSession | None = None
    denoise: bool = False
