"""Test helpers for sockets and waiting: a free port, and a bounded wait for a condition.

`free_port()` replaces the `_free_port()` that several tests copied (bind port 0, close,
hand the number to a server that binds it later). That port came from the kernel's
ephemeral range, which it also hands out as the source port of any outgoing connection:
between the close and the server's bind, another test or process on this shared machine
could take it, and the server failed to bind or, worse, a test reached someone else's.
Ports below the ephemeral range are never handed out that way; one picked at random there
(over thousands) that binds now is free unless another test picks the same one meanwhile.
Where the code under test can bind port 0 itself and report the port, do that instead.
"""

from __future__ import annotations

import asyncio
import random
import socket
from collections.abc import Callable

_LOWEST = 10_000


def _ephemeral_floor() -> int:
    try:
        with open("/proc/sys/net/ipv4/ip_local_port_range") as f:
            return int(f.read().split()[0])
    except (OSError, ValueError, IndexError):
        return 32_768  # Linux's default (macOS and Windows start at 49152)


def free_port(host: str = "127.0.0.1") -> int:
    """A TCP port on `host` that binds now and that the kernel hands to no outgoing connection."""
    rng = random.SystemRandom()
    top = max(_ephemeral_floor(), _LOWEST + 1_000)
    for _ in range(200):
        port = rng.randrange(_LOWEST, top)
        with socket.socket() as s:
            try:
                s.bind((host, port))
            except OSError:
                continue
        return port
    raise RuntimeError(f"no free port found on {host} in {_LOWEST}..{top - 1}")


async def until(condition: Callable[[], bool], timeout: float = 10.0, what: str = "the condition", step: float = 0.01) -> None:
    """Wait until `condition()` holds, polling every `step` s; fail after `timeout` s.

    For a test that would otherwise sleep a guessed time and hope: it goes on as soon as the
    condition holds, and a condition that never does fails the test instead of hanging it."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    while not condition():
        if loop.time() > deadline:
            raise AssertionError(f"{what} did not hold within {timeout} s")
        await asyncio.sleep(step)


async def until_steady(value: Callable[[], object], quiet_s: float = 0.3, timeout: float = 10.0, what: str = "the value") -> None:
    """Wait until `value()` has not changed for `quiet_s` (arrivals have stopped); fail after `timeout` s."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    last, since = value(), loop.time()
    while loop.time() - since < quiet_s:
        if loop.time() > deadline:
            raise AssertionError(f"{what} still changing after {timeout} s")
        await asyncio.sleep(0.01)
        now = value()
        if now != last:
            last, since = now, loop.time()
