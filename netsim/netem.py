"""A scenario as Linux `tc` commands: netem for loss, delay and jitter, tbf for the rate cap.

The Docker setup (docker/entrypoint.sh) impairs each container's egress with the kernel's
qdiscs, and it must run the *same* scenarios as the relays and the experiments, so the
numbers come from `netsim/scenarios/*.toml` (and their traces) through this module instead of
being written out again by hand in a shell script. It is pure: it builds argv lists and a
schedule; `run_schedule` (used by `python -m netsim netem --run`) is the only part with I/O,
and even that takes its runner, clock and sleep as arguments so the tests drive it.

Per direction (each container shapes its own egress, so a scenario applies both ways):

    tc qdisc replace dev eth0 root handle 1: netem [delay D [J [distribution normal]]] [loss ...]
    tc qdisc replace dev eth0 parent 1:1 handle 10: stab overhead O tbf rate Rkbit burst B latency Qms

Why two qdiscs: netem's own `rate` has a queue limit counted in packets (default 1000, at
4 kbit/s minutes of queue), while the scenarios give a drop-tail limit in milliseconds
(`queue_ms`), which is exactly tbf's `latency` (or in bytes, tbf's `limit`), as in
netsim/namespaces.py. netem as the root releases each packet to its tbf child when its delay
has passed, so a packet meets loss, then delay and jitter, then the bottleneck; the userspace
model puts the bottleneck before the delay, which changes nothing for a fixed delay.

Mappings, each checked in tests/netsim/test_netem.py:
- `BernoulliLoss(rate)` -> `loss random {100 rate}%`.
- `GilbertElliottLoss(p_good_bad, p_bad_good, loss_bad, loss_good)` ->
  `loss gemodel p r 1-h 1-k` with p = p_good_bad, r = p_bad_good, 1-h = loss_bad and
  1-k = loss_good, all in percent (in netem's Gilbert-Elliott model h and k are the chances
  that a packet gets *through* in the bad and the good state, hence 1-h and 1-k are the loss
  chances; iproute2 takes 1-h and 1-k on its command line). One difference in timing: the
  kernel draws a packet's fate in the state it was in before moving the chain, the userspace
  model in the state after; the chains are the same, so the average loss and the burst
  lengths are too.
- `delay_ms`, `jitter_ms`: `delay Dms Jms`. netem's jitter without a distribution table is
  uniform over D +/- J, our `uniform` (J is the half-width); `normal` adds
  `distribution normal`, whose table makes J the standard deviation, as ours.
  (iproute2 ships no `uniform.dist`: naming it fails, so it is left out.)
- `rate_kbps` -> tbf `rate Rkbit` (tc's kbit is 1000 bit/s, as ours). The bucket is one MTU
  (1600 B) or 5 ms of rate, whichever is larger (as netsim/namespaces.py).
- What the cap counts: a scenario counts each packet's payload plus `overhead_bytes` (by
  default the transport's IP headers; a scenario may set 0: payload only), while tbf on
  eth0 counts whole Ethernet frames: payload + UDP 8 or TCP 32 (20 + Linux's 12 B of
  timestamps) + IPv4 20 + Ethernet 14. A size table (`stab overhead O`, which may be
  negative) on the tbf makes the kernel count what the scenario counts:
  O = overhead_bytes - (14 + 20 + 8 | 32), per `transport` ("udp" for WebRTC, "tcp" for the
  websocket). Otherwise a payload-only 4 kbit/s link would be another, narrower link in
  the kernel. It stays per packet, not per TCP segment, and a container's tbf also carries
  its call's websocket control traffic, which a UDP relay never sees.
- `queue_ms` -> tbf `latency Qms`; `queue_bytes` -> tbf `limit N`; neither -> `latency 10000ms`
  (tbf needs a limit; 10 s stands in for none).
- `tcp_rto_ms` has no kernel equivalent: the containers' real TCP retransmits.

A trace becomes a schedule: `(time_s, argv)` pairs, the full set at 0 s and then, at each row
that changes something, only the commands whose argv changed (a capacity step touches tbf
only). Time 0 is whenever the caller of `run_schedule` starts its clock.
"""

from __future__ import annotations

import re
import subprocess
import time
from collections.abc import Callable, Sequence

from netsim.impairment import BernoulliLoss, GilbertElliottLoss, ImpairmentConfig
from netsim.scenario import Scenario, Transport

ROOT_HANDLE = "1:"
RATE_PARENT = "1:1"
RATE_HANDLE = "10:"
NO_QUEUE_LIMIT_MS = 10_000.0  # tbf must have a limit; this stands in for "none"
MIN_BURST_BYTES = 1600  # one MTU-sized packet
ETHERNET_HEADER = 14
FRAME_HEADERS = {"udp": ETHERNET_HEADER + 20 + 8, "tcp": ETHERNET_HEADER + 20 + 32}  # what tbf sees beyond the payload
_DEV = re.compile(r"^[A-Za-z0-9_.@:-]{1,15}$")  # a Linux interface name (IFNAMSIZ - 1)

Argv = list[str]
Step = tuple[float, Argv]


class NetemError(RuntimeError):
    """A tc command could not be run or failed; the message is one line."""


def _num(x: float) -> str:
    """A number as tc reads it: no exponent, no trailing zeros, 6 significant digits."""
    text = f"{x:.6g}"
    if "e" in text:  # tiny or huge values: fixed notation instead
        text = f"{x:.6f}".rstrip("0").rstrip(".")
    return text


def _pct(p: float) -> str:
    return f"{_num(p * 100)}%"


def check_dev(dev: str) -> str:
    """The interface name, or ValueError: it ends up on a root command line."""
    if not _DEV.match(dev):
        raise ValueError(f"not an interface name: {dev!r}")
    return dev


def netem_options(config: ImpairmentConfig) -> Argv:
    """What follows `netem`: delay, jitter and loss of `config` (empty: netem passes all)."""
    opts: Argv = []
    if config.delay_ms > 0 or config.jitter_ms > 0:
        opts += ["delay", f"{_num(config.delay_ms)}ms"]
        if config.jitter_ms > 0:
            opts.append(f"{_num(config.jitter_ms)}ms")
            if config.jitter_distribution == "normal":
                opts += ["distribution", "normal"]
    loss = config.loss
    if isinstance(loss, BernoulliLoss):
        opts += ["loss", "random", _pct(loss.rate)]
    elif isinstance(loss, GilbertElliottLoss):
        opts += ["loss", "gemodel", _pct(loss.p_good_bad), _pct(loss.p_bad_good), _pct(loss.loss_bad), _pct(loss.loss_good)]
    return opts


def burst_bytes(rate_kbps: float) -> int:
    """tbf's bucket: one MTU or 5 ms of rate, whichever is larger, so short bursts pass."""
    return max(MIN_BURST_BYTES, int(rate_kbps * 1000 / 8 * 0.005))


def stab_overhead(overhead_bytes: int, transport: Transport) -> int:
    """tbf's per-packet size correction so the kernel counts `overhead_bytes` of headers."""
    return overhead_bytes - FRAME_HEADERS[transport]


def tbf_options(config: ImpairmentConfig) -> Argv | None:
    """What follows `tbf` for the rate cap and its drop-tail queue; None without a cap."""
    if config.rate_kbps is None:
        return None
    opts = ["rate", f"{_num(config.rate_kbps)}kbit", "burst", str(burst_bytes(config.rate_kbps))]
    if config.queue_bytes is not None:
        return opts + ["limit", str(config.queue_bytes)]
    queue_ms = config.queue_ms if config.queue_ms is not None else NO_QUEUE_LIMIT_MS
    return opts + ["latency", f"{_num(queue_ms)}ms"]


def commands(config: ImpairmentConfig, dev: str = "eth0", transport: Transport = "udp") -> list[Argv]:
    """The tc argv lists that put `config` on `dev`'s egress (replace: safe to repeat).

    `config.overhead_bytes` is what the cap counts per packet beyond the payload (filled in by
    `Scenario.config_for`); `transport` says which headers the kernel adds to it."""
    check_dev(dev)
    if transport not in FRAME_HEADERS:
        raise ValueError(f"transport must be 'udp' or 'tcp', got {transport!r}")
    out = [["tc", "qdisc", "replace", "dev", dev, "root", "handle", ROOT_HANDLE, "netem", *netem_options(config)]]
    tbf = tbf_options(config)
    if tbf is not None:
        stab = stab_overhead(config.overhead_bytes, transport)
        size = ["stab", "overhead", str(stab)] if stab else []
        out.append(["tc", "qdisc", "replace", "dev", dev, "parent", RATE_PARENT, "handle", RATE_HANDLE, *size, "tbf", *tbf])
    return out


def clear_command(dev: str = "eth0") -> Argv:
    """Back to the interface's default qdisc (fails harmlessly when nothing was set)."""
    return ["tc", "qdisc", "del", "dev", check_dev(dev), "root"]


def config_at(scenario: Scenario, t: float, transport: Transport = "udp") -> ImpairmentConfig:
    """The scenario's impairment in force `t` seconds in, its overhead filled in for `transport`."""
    return scenario.config_at(t, transport)


def commands_at(scenario: Scenario, t: float = 0.0, dev: str = "eth0", transport: Transport = "udp") -> list[Argv]:
    return commands(config_at(scenario, t, transport), dev, transport)


def schedule(scenario: Scenario, dev: str = "eth0", transport: Transport = "udp") -> list[Step]:
    """(time_s, argv) in time order: everything at 0, then only the commands that change."""
    times = [0.0] if scenario.trace is None else [float(t) for t in scenario.trace.times]
    steps: list[Step] = []
    prev: dict[str, Argv] = {}  # "root" / "rate" -> the argv last applied
    for t in times:
        now = {"root" if argv[5] == "root" else "rate": argv for argv in commands_at(scenario, t, dev, transport)}
        if "rate" in prev and "rate" not in now:  # a cap that goes away (not in shipped traces)
            now["rate"] = ["tc", "qdisc", "replace", "dev", dev, "parent", RATE_PARENT, "handle", RATE_HANDLE, "pfifo", "limit", "1000"]
        for key in ("root", "rate"):
            if key in now and now[key] != prev.get(key):
                steps.append((t, now[key]))
        prev = now
    return steps


def _run_tc(argv: Argv) -> None:
    try:
        done = subprocess.run(argv, capture_output=True, text=True, timeout=10, check=False)
    except FileNotFoundError:
        raise NetemError(f"{argv[0]} not found (apt-get install iproute2)") from None
    except (OSError, subprocess.TimeoutExpired) as e:
        raise NetemError(f"{' '.join(argv)}: {e}") from None
    if done.returncode != 0:
        lines = (done.stderr or done.stdout).strip().splitlines()
        raise NetemError(f"{' '.join(argv)}: {lines[0] if lines else f'exit {done.returncode}'}")


def run_schedule(
    steps: Sequence[Step],
    *,
    runner: Callable[[Argv], None] = _run_tc,
    clock: Callable[[], float] = time.monotonic,
    sleep: Callable[[float], None] = time.sleep,
    log: Callable[[float, Argv], None] | None = None,
) -> int:
    """Apply each step when its time comes (time 0 = this call); returns how many ran.

    Raises NetemError at the first command that fails: a half-applied scenario would make
    the run measure something else than it says."""
    start = clock()
    for t, argv in sorted(steps, key=lambda step: step[0]):
        wait = start + t - clock()
        if wait > 0:
            sleep(wait)
        runner(argv)
        if log is not None:
            log(t, argv)
    return len(steps)
