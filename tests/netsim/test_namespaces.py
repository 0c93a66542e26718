"""Kernel-level impairment across two namespaces: skipped, with the reason, where it cannot run."""

from __future__ import annotations

import json
import subprocess
import sys
from collections.abc import Iterator

import pytest

from netsim.impairment import BernoulliLoss, GilbertElliottLoss, ImpairmentConfig
from netsim.namespaces import NamespaceError, NamespacePair, support

RECV = r"""
import json, socket, sys, time
s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
s.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 1 << 20)
s.bind(("0.0.0.0", int(sys.argv[1])))
print("ready", flush=True)
s.settimeout(float(sys.argv[2]))
n = size = 0
first = last = None
try:
    while True:
        data = s.recv(65536)
        last = time.monotonic()
        first = first or last
        n += 1
        size += len(data)
        s.settimeout(0.5)
except TimeoutError:
    pass
print(json.dumps({"count": n, "bytes": size, "span": (last - first) if n > 1 else 0.0}), flush=True)
"""

SEND = r"""
import socket, sys, time
host, port, n, size, bps = sys.argv[1], int(sys.argv[2]), int(sys.argv[3]), int(sys.argv[4]), float(sys.argv[5])
s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
gap = size * 8 / bps
t0 = time.monotonic()
for i in range(n):
    s.sendto(i.to_bytes(4, "big") + bytes(size - 4), (host, port))
    wait = t0 + (i + 1) * gap - time.monotonic()
    if wait > 0:
        time.sleep(wait)
"""


@pytest.fixture(scope="module")
def net() -> Iterator[NamespacePair]:
    reason = support()
    if reason is not None:
        pytest.skip(f"network namespaces unavailable: {reason}")
    with NamespacePair() as pair:
        yield pair


def udp_across(net: NamespacePair, n: int, size: int, bps: float) -> dict[str, float]:
    """n datagrams of `size` bytes at `bps` from a to b; what b received."""
    recv = net.run("b", [sys.executable, "-c", RECV, "9000", "5"], stdout=subprocess.PIPE, text=True)
    assert recv.stdout is not None and recv.stdout.readline().strip() == "ready"
    send = net.run("a", [sys.executable, "-c", SEND, net.ip("b"), "9000", str(n), str(size), str(bps)])
    assert send.wait(timeout=30) == 0
    out, _ = recv.communicate(timeout=30)
    return json.loads(out)


def test_udp_crosses_the_veth(net: NamespacePair) -> None:
    net.clear("a->b")
    got = udp_across(net, 300, 200, 2_000_000)
    assert got["count"] >= 297


def test_iptables_random_loss(net: NamespacePair) -> None:
    net.impair("a->b", loss=0.3)
    try:
        got = udp_across(net, 1_000, 100, 2_000_000)
        assert got["count"] / 1_000 == pytest.approx(0.7, abs=0.06)
        dropped = net.counters("a->b")["loss_dropped"]
        assert abs(dropped - (1_000 - got["count"])) <= 5
    finally:
        net.clear("a->b")


def test_tbf_rate_cap(net: NamespacePair) -> None:
    net.apply("a->b", ImpairmentConfig(rate_kbps=400, queue_ms=200))
    try:
        # 1000-byte datagrams at 2 Mbit/s for 1.5 s into a 400 kbit/s bucket
        got = udp_across(net, 375, 1_000, 2_000_000)
        wire = 1_000 + 28 + 14  # payload + IP/UDP + Ethernet: what tbf counts
        kbps = (got["count"] - 1) * wire * 8 / got["span"] / 1000
        assert kbps == pytest.approx(400, rel=0.15)
        c = net.counters("a->b")
        assert c["tbf_dropped"] > 100 and got["count"] < 200
    finally:
        net.clear("a->b")


def test_teardown_always_happens() -> None:
    reason = support()
    if reason is not None:
        pytest.skip(f"network namespaces unavailable: {reason}")
    pair = NamespacePair(prefix="sst")
    names = list(pair.ns.values())
    with pytest.raises(RuntimeError, match="boom"), pair:
        sleeper = pair.run("a", ["sleep", "60"])
        raise RuntimeError("boom")
    assert sleeper.poll() is not None
    listed = subprocess.run(["ip", "netns", "list"], capture_output=True, text=True, check=True).stdout
    assert not any(name in listed for name in names)
    with pytest.raises(NamespaceError, match="sst-"):
        pair.exec("a", ["true"])


def test_what_the_kernel_cannot_do_is_refused() -> None:
    pair = NamespacePair()  # not entered: these are refused before any command runs
    with pytest.raises(ValueError, match="netem"):
        pair.apply("a->b", ImpairmentConfig(delay_ms=20))
    with pytest.raises(ValueError, match="Bernoulli"):
        pair.apply("a->b", ImpairmentConfig(loss=GilbertElliottLoss(p_good_bad=0.1, p_bad_good=0.5)))
    with pytest.raises(ValueError, match="loss must be"):
        pair.impair("a->b", loss=1.5)
    with pytest.raises(ValueError, match="direction"):
        pair.impair("a-b", loss=BernoulliLoss(rate=0.1).rate)  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="side"):
        pair.run("c", ["true"])  # type: ignore[arg-type]


def test_support_says_why_not(monkeypatch: pytest.MonkeyPatch) -> None:
    import netsim.namespaces as ns

    monkeypatch.setattr(ns.os, "geteuid", lambda: 1000)
    assert ns.support.__wrapped__(install=False) == "needs root (network namespaces, tc and iptables)"
    monkeypatch.setattr(ns.os, "geteuid", lambda: 0)
    monkeypatch.setattr(ns.shutil, "which", lambda tool: None)
    assert "missing" in ns.support.__wrapped__(install=False)
