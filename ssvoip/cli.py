"""`ssvoip <command>`: the loopback call, calls (listen, call) and the codec commands."""

from __future__ import annotations

import sys

from codec.cli import main as codec_main

USAGE = """usage: ssvoip <command> [args]

  loopback   a one-way call on 127.0.0.1 with the bundled sample, with its statistics
  listen     wait for calls (full duplex; WebRTC data channel or websocket)
  call       call a listener: ssvoip call ws://HOST:PORT
  experiment a call through a network scenario (capacity-drop, loss-10, burst-15, jitter-50, mobile)

codec commands (same as `python -m codec`):
  encode, decode, roundtrip, info, bench, demo, train, data, export, eval
"""


def main(argv: list[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    if not argv or argv[0] in ("-h", "--help"):
        print(USAGE)
        return 0 if argv else 2
    if argv[0] == "loopback":
        from ssvoip.loopback import main as loopback_main

        return loopback_main(argv[1:])
    if argv[0] == "experiment":
        from ssvoip.experiment import main as experiment_main

        return experiment_main(argv[1:])
    if argv[0] in ("listen", "call"):
        from ssvoip.calls import main as calls_main

        return calls_main(argv[0], argv[1:])
    return codec_main(argv)
