"""python -m netsim relay --udp|--tcp --listen HOST:PORT --target HOST:PORT [impairments]
python -m netsim scenarios
python -m netsim netem SCENARIO [--dev eth0] [--transport udp|tcp] [--run] [--part all|initial|changes]

The relay runs until Ctrl-C / SIGTERM (or `--duration`), then prints its counters as one JSON
line. Impairment flags override the scenario's base values; a scenario's trace starts when
the relay arms (at start, or `--arm-after` seconds later). Errors in the input end with one
`error:` line and exit code 2.

`netem` prints the scenario's tc commands as `TIME_S<TAB>COMMAND` lines (see netsim/netem.py),
or with `--run` applies them, each when its time comes (needs root or CAP_NET_ADMIN and
iproute2; a failing tc command ends it with one `error:` line and exit code 1).
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import shlex
import signal
import sys
from typing import NoReturn

from pydantic import ValidationError

from netsim.impairment import BernoulliLoss, GilbertElliottLoss, ImpairmentConfig, one_line_error
from netsim.netem import NetemError, check_dev, run_schedule, schedule
from netsim.relay import TcpRelay, UdpRelay
from netsim.scenario import IP_TCP_OVERHEAD, IP_UDP_OVERHEAD, ScenarioError, Transport, load_scenario, scenario_names
from netsim.trace import Trace, TraceError, load_trace


class UsageError(Exception):
    """Bad input from the user: reported as one `error:` line, exit code 2 (the contract of
    codec/command_line.py, which this leaf package may not import)."""


class _Parser(argparse.ArgumentParser):
    def error(self, message: str) -> NoReturn:
        print(f"error: {message}", file=sys.stderr)
        raise SystemExit(2)


def _address(text: str) -> tuple[str, int]:
    host, sep, port = text.rpartition(":")
    if not sep or not host or not port.isdigit() or not 0 <= int(port) <= 65535:
        raise argparse.ArgumentTypeError(f"expected HOST:PORT, got {text!r}")
    return host.strip("[]"), int(port)


def _burst(text: str) -> GilbertElliottLoss:
    try:
        avg, length = (float(x) for x in text.split(","))
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected AVG_LOSS,MEAN_BURST (e.g. 0.15,3), got {text!r}") from None
    try:
        return GilbertElliottLoss.from_average(avg, length)
    except ValueError as e:
        raise argparse.ArgumentTypeError(str(e)) from None


def _parser() -> argparse.ArgumentParser:
    p = _Parser(prog="python -m netsim", description="Network impairment for calls.")
    sub = p.add_subparsers(dest="command", required=True, parser_class=_Parser)
    sub.add_parser("scenarios", help="list the shipped scenarios")
    n = sub.add_parser("netem", help="a scenario as tc netem/tbf commands (print, or apply over time)")
    n.add_argument("scenario", metavar="NAME|FILE", help=f"a scenario ({', '.join(scenario_names())}) or a TOML file")
    n.add_argument("--dev", default="eth0", help="the interface whose egress to impair (default eth0)")
    n.add_argument(
        "--transport",
        choices=["udp", "tcp"],
        default="udp",
        help="the call's media transport: udp (WebRTC, default) or tcp (websocket); sets what the cap counts",
    )
    n.add_argument("--run", action="store_true", help="apply the commands with tc, each at its time (needs NET_ADMIN)")
    n.add_argument(
        "--part", choices=["all", "initial", "changes"], default="all", help="initial: only the settings at 0 s; changes: only the later ones, timed from now"
    )
    r = sub.add_parser("relay", help="an impairing UDP or TCP relay")
    kind = r.add_mutually_exclusive_group(required=True)
    kind.add_argument("--udp", action="store_true", help="relay UDP datagrams (WebRTC)")
    kind.add_argument("--tcp", action="store_true", help="relay TCP streams (websocket)")
    r.add_argument("--listen", type=_address, required=True, metavar="HOST:PORT")
    r.add_argument("--target", type=_address, required=True, metavar="HOST:PORT")
    r.add_argument("--scenario", metavar="NAME|FILE", help=f"base impairment and trace ({', '.join(scenario_names())})")
    r.add_argument("--trace", metavar="FILE", help="a trace (.csv or .jsonl); replaces the scenario's")
    loss = r.add_mutually_exclusive_group()
    loss.add_argument("--loss", type=float, metavar="P", help="random loss probability, 0..1")
    loss.add_argument("--burst", type=_burst, metavar="AVG,LEN", help="Gilbert-Elliott loss: average loss, mean burst in packets")
    r.add_argument("--delay-ms", type=float)
    r.add_argument("--jitter-ms", type=float)
    r.add_argument("--jitter-dist", choices=["normal", "uniform"])
    r.add_argument("--rate-kbps", type=float, help="rate cap in kbit/s of wire bytes")
    queue = r.add_mutually_exclusive_group()
    queue.add_argument("--queue-ms", type=float, help="drop-tail limit as queueing delay")
    queue.add_argument("--queue-bytes", type=int, help="drop-tail limit in bytes")
    r.add_argument("--overhead-bytes", type=int, help="per-packet bytes the relay does not see (default: IP/UDP 28, IP/TCP 40)")
    r.add_argument("--tcp-rto-ms", type=float, help="TCP: delay a lost segment costs (default 200)")
    r.add_argument("--seed", type=int, default=0)
    r.add_argument("--arm-after", type=float, default=0.0, metavar="S", help="pass traffic clean for S seconds first")
    r.add_argument("--duration", type=float, metavar="S", help="stop after S seconds")
    return p


def _config(args: argparse.Namespace) -> tuple[ImpairmentConfig, Trace | None]:
    transport: Transport = "tcp" if args.tcp else "udp"
    base: dict[str, object] = {}
    trace: Trace | None = None
    if args.scenario:
        scenario = load_scenario(args.scenario)
        base = scenario.config_for(transport).model_dump()
        trace = scenario.trace
    else:
        base["overhead_bytes"] = IP_TCP_OVERHEAD if args.tcp else IP_UDP_OVERHEAD
    if args.trace:
        trace = load_trace(args.trace)
    if args.loss is not None:
        if not 0.0 <= args.loss <= 1.0:
            raise UsageError(f"--loss must be in 0..1, got {args.loss:g}")
        base["loss"] = BernoulliLoss(rate=args.loss)
    if args.burst is not None:
        base["loss"] = args.burst
    flags = {
        "delay_ms": args.delay_ms,
        "jitter_ms": args.jitter_ms,
        "jitter_distribution": args.jitter_dist,
        "rate_kbps": args.rate_kbps,
        "overhead_bytes": args.overhead_bytes,
        "tcp_rto_ms": args.tcp_rto_ms,
    }
    base.update({k: v for k, v in flags.items() if v is not None})
    if args.queue_ms is not None:
        base.update(queue_ms=args.queue_ms, queue_bytes=None)
    if args.queue_bytes is not None:
        base.update(queue_bytes=args.queue_bytes, queue_ms=None)
    try:
        return ImpairmentConfig.model_validate(base), trace
    except ValidationError as e:
        raise UsageError(one_line_error(e)) from None


async def _relay(args: argparse.Namespace, config: ImpairmentConfig, trace: Trace | None) -> dict[str, dict[str, int]]:
    cls = TcpRelay if args.tcp else UdpRelay
    relay = cls(args.listen, args.target, config, trace=trace, seed=args.seed, armed=args.arm_after <= 0)
    try:
        await relay.start()
    except OSError as e:
        raise UsageError(f"cannot listen on {args.listen[0]}:{args.listen[1]}: {e.strerror or e}") from None
    host, port = relay.listen_address
    print(f"netsim relay: {'tcp' if args.tcp else 'udp'} {host}:{port} -> {args.target[0]}:{args.target[1]}", file=sys.stderr)
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        with contextlib.suppress(NotImplementedError, RuntimeError):
            loop.add_signal_handler(sig, stop.set)
    if args.arm_after > 0:
        loop.call_later(args.arm_after, relay.arm)
    if args.duration is not None:
        loop.call_later(args.duration, stop.set)
    try:
        await stop.wait()
    finally:
        await relay.close()
    return relay.counters()


def _netem(args: argparse.Namespace) -> int:
    try:
        check_dev(args.dev)
        steps = schedule(load_scenario(args.scenario), args.dev, args.transport)
    except ValueError as e:  # a bad interface name; ScenarioError is a ValueError too
        raise UsageError(str(e)) from None
    if args.part == "initial":
        steps = [s for s in steps if s[0] <= 0]
    elif args.part == "changes":
        steps = [s for s in steps if s[0] > 0]
    if not args.run:
        for t, argv in steps:
            print(f"{t:g}\t{shlex.join(argv)}")
        return 0

    def log(t: float, argv: list[str]) -> None:
        print(f"netem: {t:g} s: {shlex.join(argv)}", file=sys.stderr, flush=True)

    try:
        run_schedule(steps, log=log)
    except NetemError as e:  # tc failed: not the user's input, so not exit code 2
        print(f"error: {e}", file=sys.stderr)
        return 1
    return 0


def _scenarios(args: argparse.Namespace) -> int:
    for name in scenario_names():
        print(f"{name}: {load_scenario(name).description}")
    return 0


def _relay_command(args: argparse.Namespace) -> int:
    config, trace = _config(args)
    print(json.dumps(asyncio.run(_relay(args, config, trace))))
    return 0


def main(argv: list[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    command = {"scenarios": _scenarios, "netem": _netem, "relay": _relay_command}[args.command]
    try:
        return command(args)
    except (UsageError, ScenarioError, TraceError) as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        return 130


if __name__ == "__main__":
    raise SystemExit(main())
