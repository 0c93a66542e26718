"""Kernel-level impairment: two network namespaces joined by a veth pair.

The userspace relays model a link; this runs the real thing, so the kernel's own UDP and TCP
(retransmission, congestion control, socket buffers) meet the impairment. Side "a" and side
"b" each get a namespace with one end of the veth (10.47.0.1 and 10.47.0.2 by default), and
`run(side, argv)` starts a program in either.

Impairment per direction (`impair("a->b", rate_kbps=..., loss=...)`):
- a rate cap: `tc qdisc replace dev <a's veth> root tbf rate R burst B latency L` on the
  sender's egress; `latency` is tbf's drop-tail limit, the same thing as `queue_ms`;
- random loss: `iptables -A INPUT -m statistic --mode random --probability P -j DROP` in the
  receiver's namespace. INPUT on the receiver, not OUTPUT on the sender, because a packet
  dropped in OUTPUT fails the sender's sendmsg() with EPERM, which a real lossy link never does.

There is no delay or jitter here: that needs netem, which this kernel does not have (use the
relay for those). Everything is torn down on exit, also after errors: deleting a namespace
deletes its veth end and its iptables rules. Names are unique per instance (pid + random),
so parallel runs and leftovers from a killed run do not collide.

Needs root, `ip netns`, veth, `tc` tbf and iptables' statistic match; `support()` tries each
once (in a throw-away namespace) and says why not, so tests can skip with a reason.
"""

from __future__ import annotations

import functools
import logging
import os
import secrets
import shutil
import subprocess
from types import TracebackType
from typing import Any, Literal, Self

from netsim.impairment import BernoulliLoss, ImpairmentConfig

log = logging.getLogger(__name__)
Side = Literal["a", "b"]
Direction = Literal["a->b", "b->a"]
TOOLS = ("ip", "tc", "iptables")


class NamespaceError(RuntimeError):
    """A namespace command failed; the message names the command and its stderr."""


def _cmd(argv: list[str], timeout: float = 10.0) -> str:
    try:
        done = subprocess.run(argv, capture_output=True, text=True, timeout=timeout, check=False)
    except (OSError, subprocess.TimeoutExpired) as e:
        raise NamespaceError(f"{' '.join(argv)}: {e}") from None
    if done.returncode != 0:
        err = (done.stderr or done.stdout).strip().splitlines()
        raise NamespaceError(f"{' '.join(argv)}: {err[-1] if err else f'exit {done.returncode}'}")
    return done.stdout


def install_tools() -> str | None:
    """apt-get install iproute2 and iptables if a tool is missing; None on success, else why not."""
    missing = [t for t in TOOLS if shutil.which(t) is None]
    if not missing:
        return None
    if os.geteuid() != 0:
        return f"missing {', '.join(missing)} and not root to install them"
    if shutil.which("apt-get") is None:
        return f"missing {', '.join(missing)} and no apt-get"
    env = {**os.environ, "DEBIAN_FRONTEND": "noninteractive"}
    for argv in (["apt-get", "update", "-qq"], ["apt-get", "install", "-y", "-qq", "iproute2", "iptables"]):
        try:
            done = subprocess.run(argv, capture_output=True, text=True, env=env, timeout=300, check=False)
        except (OSError, subprocess.TimeoutExpired) as e:
            return f"{' '.join(argv)} failed: {e}"
        if done.returncode != 0 and argv[1] == "install":
            last = (done.stderr.strip().splitlines() or ["?"])[-1]
            return f"apt-get install iproute2 iptables failed: {last}"
    missing = [t for t in TOOLS if shutil.which(t) is None]
    return f"still missing after apt-get: {', '.join(missing)}" if missing else None


@functools.cache
def support(install: bool = True) -> str | None:
    """None if namespaces, veth, tbf and iptables statistic all work here; else the reason.

    Found by trying in a throw-away pair, not by guessing from the environment."""
    if os.geteuid() != 0:
        return "needs root (network namespaces, tc and iptables)"
    if install:
        why = install_tools()
        if why:
            return why
    elif any(shutil.which(t) is None for t in TOOLS):
        return f"missing one of {', '.join(TOOLS)}"
    try:
        with NamespacePair() as pair:
            pair.impair("a->b", rate_kbps=1000, loss=0.5)
            pair.clear("a->b")
    except NamespaceError as e:
        return f"namespace setup failed: {e}"
    return None


class NamespacePair:
    """Two namespaces joined by veth; a context manager that always cleans up.

    >>> with NamespacePair() as net:                          # doctest: +SKIP
    ...     net.impair("a->b", rate_kbps=24, loss=0.1)
    ...     server = net.run("b", ["python", "-m", "receiver", "--listen", f"{net.ip('b')}:8765"])
    """

    def __init__(self, *, subnet: str = "10.47.0", prefix: str = "ssn") -> None:
        tag = f"{os.getpid() % 10_000:04d}{secrets.token_hex(2)}"
        self.ns: dict[Side, str] = {"a": f"{prefix}-{tag}-a", "b": f"{prefix}-{tag}-b"}
        self.dev: dict[Side, str] = {"a": f"v{tag}a", "b": f"v{tag}b"}  # <= 15 chars
        self.addr: dict[Side, str] = {"a": f"{subnet}.1", "b": f"{subnet}.2"}
        self._created: list[str] = []
        self._procs: list[subprocess.Popen[Any]] = []

    def ip(self, side: Side) -> str:
        return self.addr[side]

    def __enter__(self) -> Self:
        try:
            self._setup()
        except BaseException:
            self.close()
            raise
        return self

    def __exit__(self, t: type[BaseException] | None, e: BaseException | None, tb: TracebackType | None) -> None:
        self.close()

    def _setup(self) -> None:
        for side in ("a", "b"):
            _cmd(["ip", "netns", "add", self.ns[side]])
            self._created.append(self.ns[side])
        _cmd(["ip", "link", "add", self.dev["a"], "type", "veth", "peer", "name", self.dev["b"]])
        self._created.append(f"link:{self.dev['a']}")
        sides: tuple[Side, Side] = ("a", "b")
        for side in sides:
            _cmd(["ip", "link", "set", self.dev[side], "netns", self.ns[side]])
            self.exec(side, ["ip", "addr", "add", f"{self.addr[side]}/24", "dev", self.dev[side]])
            self.exec(side, ["ip", "link", "set", self.dev[side], "up"])
            self.exec(side, ["ip", "link", "set", "lo", "up"])

    def close(self) -> None:
        """Stop the processes started by `run`, delete the namespaces (and with them the veth
        and the iptables rules); never raises."""
        for p in self._procs:
            if p.poll() is None:
                p.kill()
                try:
                    p.wait(timeout=5)
                except subprocess.TimeoutExpired:
                    log.warning("process %d did not exit", p.pid)
        self._procs.clear()
        for name in reversed(self._created):
            argv = ["ip", "link", "del", name[5:]] if name.startswith("link:") else ["ip", "netns", "del", name]
            done = subprocess.run(argv, capture_output=True, text=True, check=False)
            if done.returncode != 0 and not name.startswith("link:"):  # the veth goes with its namespace
                log.warning("cleanup: %s: %s", " ".join(argv), done.stderr.strip())
        self._created.clear()

    # -- running things --------------------------------------------------------------------
    def _prefix(self, side: Side) -> list[str]:
        if side not in self.ns:
            raise ValueError(f"side must be 'a' or 'b', got {side!r}")
        return ["ip", "netns", "exec", self.ns[side]]

    def run(self, side: Side, argv: list[str], **popen: Any) -> subprocess.Popen[Any]:
        """Start `argv` inside `side`'s namespace; it is killed at `close()` if still running."""
        proc: subprocess.Popen[Any] = subprocess.Popen(self._prefix(side) + list(argv), **popen)
        self._procs.append(proc)
        return proc

    def exec(self, side: Side, argv: list[str], timeout: float = 10.0) -> str:
        """Run `argv` inside `side` to completion; its stdout, or NamespaceError."""
        return _cmd(self._prefix(side) + list(argv), timeout)

    # -- impairment ------------------------------------------------------------------------
    @staticmethod
    def _ends(direction: Direction) -> tuple[Side, Side]:
        if direction == "a->b":
            return "a", "b"
        if direction == "b->a":
            return "b", "a"
        raise ValueError(f"direction must be 'a->b' or 'b->a', got {direction!r}")

    def impair(
        self, direction: Direction, *, rate_kbps: float | None = None, loss: float = 0.0, queue_ms: float = 200.0, burst_bytes: int | None = None
    ) -> None:
        """Set (replace) the impairment of one direction: a tbf rate cap and random loss."""
        sender, receiver = self._ends(direction)
        if not 0.0 <= loss <= 1.0:
            raise ValueError(f"loss must be in 0..1, got {loss}")
        self.clear(direction)
        if rate_kbps is not None:
            if rate_kbps <= 0:
                raise ValueError(f"rate_kbps must be positive, got {rate_kbps}")
            # tbf needs a bucket of at least one MTU-sized packet; more would let bursts through.
            burst = burst_bytes if burst_bytes is not None else max(1600, int(rate_kbps * 1000 / 8 * 0.005))
            self.exec(
                sender,
                [
                    "tc",
                    "qdisc",
                    "replace",
                    "dev",
                    self.dev[sender],
                    "root",
                    "tbf",
                    "rate",
                    f"{rate_kbps:g}kbit",
                    "burst",
                    str(burst),
                    "latency",
                    f"{queue_ms:g}ms",
                ],
            )
        if loss > 0:
            self.exec(
                receiver,
                [
                    "iptables",
                    "-w",
                    "-A",
                    "INPUT",
                    "-i",
                    self.dev[receiver],
                    "-m",
                    "statistic",
                    "--mode",
                    "random",
                    "--probability",
                    f"{loss:.6f}",
                    "-j",
                    "DROP",
                ],
            )

    def apply(self, direction: Direction, config: ImpairmentConfig) -> None:
        """An ImpairmentConfig, as far as the kernel here can: rate cap, queue, Bernoulli loss.

        Delay, jitter and Gilbert-Elliott loss raise ValueError (no netem on this kernel); the
        overhead is real here, so `overhead_bytes` is ignored."""
        if config.delay_ms or config.jitter_ms:
            raise ValueError("delay and jitter need netem, which this kernel lacks: use the relay")
        if config.loss is not None and not isinstance(config.loss, BernoulliLoss):
            raise ValueError("only random (Bernoulli) loss is available with iptables statistic")
        queue_ms = config.queue_ms
        if queue_ms is None and config.queue_bytes is not None and config.rate_kbps is not None:
            queue_ms = config.queue_bytes * 8 / config.rate_kbps
        self.impair(direction, rate_kbps=config.rate_kbps, loss=config.loss.rate if config.loss else 0.0, queue_ms=queue_ms if queue_ms is not None else 200.0)

    def clear(self, direction: Direction) -> None:
        """Remove one direction's rate cap and loss."""
        sender, receiver = self._ends(direction)
        subprocess.run(
            self._prefix(sender) + ["tc", "qdisc", "del", "dev", self.dev[sender], "root"], capture_output=True, check=False
        )  # fails harmlessly when there is none
        self.exec(receiver, ["iptables", "-w", "-F", "INPUT"])

    def counters(self, direction: Direction) -> dict[str, int]:
        """Packets dropped by the loss rule and by tbf, and sent by tbf, for that direction."""
        sender, receiver = self._ends(direction)
        out = {"loss_dropped": 0, "tbf_dropped": 0, "tbf_sent_packets": 0}
        for line in self.exec(receiver, ["iptables", "-w", "-L", "INPUT", "-v", "-n", "-x"]).splitlines():
            if "statistic" in line:
                out["loss_dropped"] += int(line.split()[0])
        stats = self.exec(sender, ["tc", "-s", "qdisc", "show", "dev", self.dev[sender]]).split()
        if "tbf" in stats and "Sent" in stats:
            i = stats.index("Sent")
            out["tbf_sent_packets"] = int(stats[i + 3])
            out["tbf_dropped"] = int(stats[i + 6].rstrip(","))
        return out
