"""The asyncio relays end to end on 127.0.0.1, with an echo server behind them.

Timing assertions are loose on purpose (two shared cores): the exact distributions are
measured on the pure path in test_impairment.py; here we check the relay applies them.
"""

from __future__ import annotations

import asyncio
import random
import statistics
from itertools import pairwise
from typing import Any

import pytest

from netsim.impairment import MAX_RETRANSMISSIONS, BernoulliLoss, ImpairmentConfig
from netsim.relay import TcpRelay, UdpRelay
from netsim.trace import parse_csv
from tests.ports import until

LOCAL = ("127.0.0.1", 0)
CLEAR = ImpairmentConfig()


class _Echo(asyncio.DatagramProtocol):
    def connection_made(self, transport: Any) -> None:
        self.transport = transport

    def datagram_received(self, data: bytes, addr: Any) -> None:
        self.transport.sendto(data, addr)


class _Client(asyncio.DatagramProtocol):
    def __init__(self) -> None:
        self.got: list[tuple[float, bytes]] = []

    def datagram_received(self, data: bytes, addr: Any) -> None:
        self.got.append((asyncio.get_running_loop().time(), data))


async def udp_setup(relay: UdpRelay) -> tuple[Any, _Client, Any]:
    loop = asyncio.get_running_loop()
    echo_tr, _ = await loop.create_datagram_endpoint(_Echo, local_addr=LOCAL)
    relay.target = echo_tr.get_extra_info("sockname")
    await relay.start()
    client_tr, client = await loop.create_datagram_endpoint(_Client, remote_addr=relay.listen_address)
    return echo_tr, client, client_tr


async def send_numbered(tr: Any, n: int, interval: float, start: int = 0) -> dict[int, float]:
    loop = asyncio.get_running_loop()
    sent = {}
    for i in range(start, start + n):
        sent[i] = loop.time()
        tr.sendto(i.to_bytes(4, "big") + bytes(60))
        await asyncio.sleep(interval)
    return sent


def seqs(client: _Client) -> list[int]:
    return [int.from_bytes(d[:4], "big") for _, d in client.got]


async def test_udp_relay_loss_and_delay() -> None:
    relay = UdpRelay(LOCAL, LOCAL, ImpairmentConfig(loss=BernoulliLoss(rate=0.2), delay_ms=40), backward_config=CLEAR, seed=1)
    echo_tr, client, client_tr = await udp_setup(relay)
    try:
        sent = await send_numbered(client_tr, 400, 0.002)

        def settled() -> bool:  # every datagram the loss spared has come back
            c = relay.counters()
            return c["forward"]["sent"] == 400 and len(client.got) == 400 - c["forward"]["dropped_loss"]

        await until(settled, what="all 400 datagrams sent and every one not dropped echoed")
        got = seqs(client)
        assert len(got) / 400 == pytest.approx(0.8, abs=0.08)
        rtts = [t - sent[int.from_bytes(d[:4], "big")] for t, d in client.got]
        assert min(rtts) >= 0.039
        assert statistics.median(rtts) < 0.2
        c = relay.counters()
        assert c["forward"]["sent"] == 400 and c["forward"]["dropped_loss"] == 400 - len(got)
        assert c["backward"]["delivered"] == len(got)
        assert relay.client == client_tr.get_extra_info("sockname")[:2]
    finally:
        await relay.close()
        client_tr.close()
        echo_tr.close()


async def test_udp_relay_jitter_reorders() -> None:
    relay = UdpRelay(LOCAL, LOCAL, ImpairmentConfig(delay_ms=30, jitter_ms=20, jitter_distribution="uniform"), backward_config=CLEAR, seed=2)
    echo_tr, client, client_tr = await udp_setup(relay)
    try:
        await send_numbered(client_tr, 200, 0.002)
        await until(lambda: len(client.got) >= 200, what="all 200 datagrams echoed")
        got = seqs(client)
        assert sorted(got) == list(range(200))
        assert sum(1 for a, b in pairwise(got) if b < a) > 10
    finally:
        await relay.close()
        client_tr.close()
        echo_tr.close()


async def test_udp_relay_rate_cap() -> None:
    # 60 x 1000-byte datagrams at once into 400 kbit/s (1028 wire bytes each): ~1.2 s to drain.
    relay = UdpRelay(LOCAL, LOCAL, ImpairmentConfig(rate_kbps=400, queue_ms=5_000, overhead_bytes=28), backward_config=CLEAR)
    echo_tr, client, client_tr = await udp_setup(relay)
    try:
        for _ in range(60):
            client_tr.sendto(bytes(1000))
        await until(lambda: len(client.got) >= 60, what="all 60 datagrams through the 400 kbit/s cap")
        await asyncio.sleep(0.05)  # and no more than were sent
        assert len(client.got) == 60
        span = client.got[-1][0] - client.got[0][0]
        assert 59 * 1028 * 8 / span / 1000 == pytest.approx(400, rel=0.15)
    finally:
        await relay.close()
        client_tr.close()
        echo_tr.close()


async def test_udp_relay_arm_disarm_and_set_config() -> None:
    relay = UdpRelay(LOCAL, LOCAL, ImpairmentConfig(loss=BernoulliLoss(rate=1.0)), armed=False)
    echo_tr, client, client_tr = await udp_setup(relay)
    try:
        await send_numbered(client_tr, 20, 0.001)  # set-up traffic: spared
        await asyncio.sleep(0.05)
        assert len(client.got) == 20
        relay.arm()
        await send_numbered(client_tr, 20, 0.001, start=20)
        await asyncio.sleep(0.05)
        assert len(client.got) == 20
        relay.set_config(CLEAR)  # live switch while armed
        await send_numbered(client_tr, 20, 0.001, start=40)
        await asyncio.sleep(0.05)
        assert seqs(client)[20:] == list(range(40, 60))
        relay.set_config(ImpairmentConfig(loss=BernoulliLoss(rate=1.0)))
        relay.disarm()
        await send_numbered(client_tr, 5, 0.001, start=60)
        await asyncio.sleep(0.05)
        assert len(client.got) == 45
    finally:
        await relay.close()
        client_tr.close()
        echo_tr.close()


async def test_udp_relay_follows_a_trace_from_arm() -> None:
    trace = parse_csv("time_s,loss\n0,0\n0.4,1\n")
    relay = UdpRelay(LOCAL, LOCAL, CLEAR, trace=trace, armed=False)
    echo_tr, client, client_tr = await udp_setup(relay)
    try:
        await asyncio.sleep(0.5)  # the trace has not started: it starts at arm()
        relay.arm()
        await send_numbered(client_tr, 20, 0.005)  # 0 - 0.1 s into the trace: clean
        await asyncio.sleep(0.6)  # now past 0.4 s: everything lost
        assert relay.config[0].loss == BernoulliLoss(rate=1.0)
        await send_numbered(client_tr, 20, 0.005, start=20)
        await asyncio.sleep(0.05)
        assert seqs(client) == list(range(20))
    finally:
        await relay.close()
        client_tr.close()
        echo_tr.close()


async def tcp_echo() -> tuple[asyncio.Server, tuple[str, int]]:
    async def handle(r: asyncio.StreamReader, w: asyncio.StreamWriter) -> None:
        while data := await r.read(65536):
            w.write(data)
            await w.drain()
        w.close()

    server = await asyncio.start_server(handle, *LOCAL)
    return server, server.sockets[0].getsockname()[:2]


async def test_tcp_relay_integrity_under_every_impairment() -> None:
    server, addr = await tcp_echo()
    cfg = ImpairmentConfig(loss=BernoulliLoss(rate=0.05), tcp_rto_ms=30, delay_ms=10, jitter_ms=10, rate_kbps=4_000, queue_ms=50, overhead_bytes=40)
    relay = TcpRelay(LOCAL, addr, cfg, seed=3)
    await relay.start()
    rng = random.Random(0)
    payload = rng.randbytes(150_000)
    try:
        reader, writer = await asyncio.open_connection(*relay.listen_address)

        async def send() -> None:
            i = 0
            while i < len(payload):
                n = rng.randint(1, 9_000)
                writer.write(payload[i : i + n])
                await writer.drain()
                i += n
            writer.write_eof()

        sender = asyncio.create_task(send())
        echoed = await asyncio.wait_for(reader.read(-1), 20)  # read to EOF: the EOF is relayed too
        await sender
        assert echoed == payload
        c = relay.counters()
        assert c["forward"]["delivered_bytes"] == c["backward"]["delivered_bytes"] == len(payload)
        assert c["forward"]["retransmitted"] > 0 and c["forward"]["dropped_loss"] == 0
        assert c["forward"]["delivered_wire_bytes"] > len(payload)
        writer.close()
    finally:
        await relay.close()
        server.close()


async def test_tcp_relay_delay_and_rto() -> None:
    server, addr = await tcp_echo()
    relay = TcpRelay(LOCAL, addr, ImpairmentConfig(delay_ms=25), backward_config=CLEAR)
    await relay.start()
    loop = asyncio.get_running_loop()
    try:
        reader, writer = await asyncio.open_connection(*relay.listen_address)
        rtts = []
        for _ in range(10):
            t0 = loop.time()
            writer.write(b"ping")
            await reader.readexactly(4)
            rtts.append(loop.time() - t0)
        assert min(rtts) >= 0.024 and statistics.median(rtts) < 0.15
        relay.set_config(ImpairmentConfig(delay_ms=25, loss=BernoulliLoss(rate=1.0), tcp_rto_ms=20), CLEAR)
        t0 = loop.time()
        writer.write(b"lost")  # lost every time: the RTO doubles 6 times, then it goes through
        assert await asyncio.wait_for(reader.readexactly(4), 10) == b"lost"
        assert loop.time() - t0 >= 0.02 * (1 + 2 + 4 + 8 + 16 + 32) + 0.025
        assert relay.counters()["forward"]["retransmitted"] == MAX_RETRANSMISSIONS
        writer.close()
    finally:
        await relay.close()
        server.close()


async def test_tcp_relay_rate_cap_pushes_back() -> None:
    server, addr = await tcp_echo()
    relay = TcpRelay(LOCAL, addr, ImpairmentConfig(rate_kbps=800, queue_ms=100, overhead_bytes=40), backward_config=CLEAR)
    await relay.start()
    loop = asyncio.get_running_loop()
    try:
        reader, writer = await asyncio.open_connection(*relay.listen_address)
        payload = bytes(100_000)  # ~1.05 s of wire bytes at 800 kbit/s

        async def send() -> None:
            writer.write(payload)
            await writer.drain()

        t0 = loop.time()
        sender = asyncio.create_task(send())
        await asyncio.wait_for(reader.readexactly(len(payload)), 10)
        elapsed = loop.time() - t0
        await sender
        wire = relay.counters()["forward"]["delivered_wire_bytes"]
        assert wire * 8 / elapsed / 1000 == pytest.approx(800, rel=0.2)
        assert relay.counters()["forward"]["dropped_queue"] == 0
        writer.close()
    finally:
        await relay.close()
        server.close()


async def test_tcp_relay_closes_when_target_is_down() -> None:
    server, addr = await tcp_echo()
    server.close()
    await server.wait_closed()
    relay = TcpRelay(LOCAL, addr)
    await relay.start()
    try:
        reader, writer = await asyncio.open_connection(*relay.listen_address)
        assert await asyncio.wait_for(reader.read(), 5) == b""
        writer.close()
    finally:
        await relay.close()


async def test_tcp_relay_closes_quietly_with_live_connections() -> None:
    loop = asyncio.get_running_loop()
    errors: list[dict[str, Any]] = []
    loop.set_exception_handler(lambda _loop, context: errors.append(context))
    server, addr = await tcp_echo()
    relay = TcpRelay(LOCAL, addr, ImpairmentConfig(delay_ms=200))
    await relay.start()
    try:
        reader, writer = await asyncio.open_connection(*relay.listen_address)
        writer.write(b"in flight")
        await asyncio.sleep(0.05)
        await relay.close()
        assert await asyncio.wait_for(reader.read(), 5) == b""  # the client sees the close
        await asyncio.sleep(0.3)  # past the delivery time of what was in flight
        writer.close()
        assert errors == []
    finally:
        loop.set_exception_handler(None)
        server.close()


async def test_tcp_relay_follows_a_trace() -> None:
    server, addr = await tcp_echo()
    trace = parse_csv("time_s,delay_ms\n0,0\n0.3,150\n")
    loop = asyncio.get_running_loop()
    try:
        async with TcpRelay(LOCAL, addr, CLEAR, backward_config=CLEAR, trace=trace) as relay:
            reader, writer = await asyncio.open_connection(*relay.listen_address)

            async def rtt() -> float:
                t0 = loop.time()
                writer.write(b"x")
                await reader.readexactly(1)
                return loop.time() - t0

            before = await rtt()
            await asyncio.sleep(0.4)
            after = await rtt()
            assert before < 0.1 and after >= 0.15
            assert relay.config[0].delay_ms == 150 and relay.config[1].delay_ms == 150
            writer.close()
    finally:
        server.close()
