"""Userspace impairment relays for UDP (WebRTC) and TCP (websocket), on asyncio.

Each relay listens, forwards to a target, and sends every packet (UDP) or stream chunk (TCP)
through an `ImpairedPath` per direction: `forward` is listener -> target (what the client
sends), `backward` is target -> client. All timing uses the event loop's clock, which is
what the paths get as `now`, so the pure model and the relay agree to the millisecond.

- `UdpRelay` remembers the address of the last client that sent to it and sends the target's
  replies there (one call at a time, as a NAT does); it uses one socket to the target.
- `TcpRelay` accepts, connects to the target and pumps both ways through stream-mode paths
  (one pair per connection): nothing is dropped or reordered, loss costs a retransmission
  timeout of delay (see `netsim.impairment`), a full bottleneck queue stops reading so the
  sender's socket buffer fills. Chunks are cut to `segment_bytes` before they enter the path,
  so overhead and loss are per segment as on a real TCP link.

`arm()` / `disarm()` switch impairment on and off without touching connections, so a call
can be set up clean and impaired once its channel is open; a trace starts at `arm()`.
`set_config()` changes the impairment live (a running trace keeps overriding its columns).
"""

from __future__ import annotations

import asyncio
import socket
import contextlib
import logging
from dataclasses import asdict, fields
from types import TracebackType
from typing import Any, Self

from netsim.impairment import ImpairedPath, ImpairmentConfig, Mode, PathCounters
from netsim.trace import Trace, TracePlayer

log = logging.getLogger(__name__)
Address = tuple[str, int]
READ_BYTES = 65_536


def _sum(counters: list[PathCounters]) -> PathCounters:
    total = PathCounters()
    for c in counters:
        for f in fields(PathCounters):
            setattr(total, f.name, getattr(total, f.name) + getattr(c, f.name))
    return total


class _Timer:
    """One loop.call_at handle that can be moved earlier or cancelled."""

    def __init__(self) -> None:
        self.handle: asyncio.TimerHandle | None = None
        self.when: float | None = None

    def set(self, loop: asyncio.AbstractEventLoop, when: float | None, callback: Any) -> None:
        if when is None:
            self.cancel()
            return
        if self.handle is not None and self.when is not None and self.when <= when:
            return  # already due as early or earlier; it reschedules itself
        self.cancel()
        self.when = when
        self.handle = loop.call_at(when, callback)

    def cancel(self) -> None:
        if self.handle is not None:
            self.handle.cancel()
        self.handle = None
        self.when = None


class _Pump:
    """Delivers a path's packets at their due times."""

    def __init__(self, loop: asyncio.AbstractEventLoop, path: ImpairedPath, deliver: Any) -> None:
        self.loop = loop
        self.path = path
        self.deliver = deliver
        self.timer = _Timer()

    def kick(self) -> None:
        self.timer.set(self.loop, self.path.next_due_time(), self._fire)

    def _fire(self) -> None:
        # asyncio may run a timer up to its clock resolution early: never deliver late for it.
        now = max(self.loop.time(), self.timer.when or 0.0)
        self.timer.handle = None
        self.timer.when = None
        for data in self.path.due(now):
            self.deliver(data)
        self.kick()

    def close(self) -> None:
        self.timer.cancel()


class _Relay:
    """What both relays share: configs, arming, the trace and the counters."""

    mode: Mode = "datagram"

    def __init__(
        self,
        listen: Address,
        target: Address,
        config: ImpairmentConfig | None = None,
        *,
        backward_config: ImpairmentConfig | None = None,
        trace: Trace | None = None,
        seed: int = 0,
        armed: bool = True,
    ) -> None:
        self.listen = listen
        self.target = target
        self._base = (config or ImpairmentConfig(), backward_config or config or ImpairmentConfig())
        self._current = self._base
        self.trace = trace
        self._players: tuple[TracePlayer, TracePlayer] | None = None
        self._trace_timer = _Timer()
        self.armed = armed
        self.seed = seed
        self._made = 0
        self._loop: asyncio.AbstractEventLoop | None = None
        self._init()

    def _init(self) -> None:
        """The subclass's own state (its sockets come at `start()`)."""

    # -- paths -----------------------------------------------------------------------------
    def _pairs(self) -> list[tuple[ImpairedPath, ImpairedPath]]:
        raise NotImplementedError

    def _new_pair(self) -> tuple[ImpairedPath, ImpairedPath]:
        seed = self.seed * 1_000_003 + 2 * self._made
        self._made += 1
        return (
            ImpairedPath(self._current[0], mode=self.mode, rng=seed, armed=self.armed),
            ImpairedPath(self._current[1], mode=self.mode, rng=seed + 1, armed=self.armed),
        )

    def _push(self, fwd: ImpairmentConfig, bwd: ImpairmentConfig) -> None:
        self._current = (fwd, bwd)
        for f, b in self._pairs():
            f.set_config(fwd)
            b.set_config(bwd)

    @property
    def config(self) -> tuple[ImpairmentConfig, ImpairmentConfig]:
        """The (forward, backward) configs in force now, trace row included."""
        return self._current

    def counters(self) -> dict[str, dict[str, int]]:
        """Forward and backward counters, summed over connections."""
        pairs = self._pairs()
        return {"forward": asdict(_sum([f.counters for f, _ in pairs])), "backward": asdict(_sum([b.counters for _, b in pairs]))}

    # -- control ---------------------------------------------------------------------------
    def set_config(self, config: ImpairmentConfig, backward: ImpairmentConfig | None = None) -> None:
        """New base impairment (both directions unless `backward` is given), live."""
        self._base = (config, backward or config)
        if self._players is not None:
            self._push(self._players[0].set_base(self._base[0]), self._players[1].set_base(self._base[1]))
        else:
            self._push(*self._base)

    def arm(self) -> None:
        """Impair from now on; a trace (re)starts from its first row now."""
        self.armed = True
        for f, b in self._pairs():
            f.arm()
            b.arm()
        if self._loop is not None:
            self._start_trace()

    def disarm(self) -> None:
        """Pass everything through untouched (a trace stops and restarts at the next arm)."""
        self.armed = False
        for f, b in self._pairs():
            f.disarm()
            b.disarm()
        self._trace_timer.cancel()
        self._players = None
        self._push(*self._base)

    def _start_trace(self) -> None:
        if self.trace is None or self._loop is None:
            return
        now = self._loop.time()
        self._players = (TracePlayer(self.trace, self._base[0]), TracePlayer(self.trace, self._base[1]))
        self._push(self._players[0].start(now), self._players[1].start(now))
        self._schedule_trace()

    def _schedule_trace(self) -> None:
        assert self._loop is not None
        nxt = self._players[0].next_change_time() if self._players else None
        self._trace_timer.cancel()
        self._trace_timer.set(self._loop, nxt, self._trace_tick)

    def _trace_tick(self) -> None:
        when = self._trace_timer.when or 0.0
        self._trace_timer.handle = None
        self._trace_timer.when = None
        if self._players is None or self._loop is None:
            return
        now = max(self._loop.time(), when)
        fwd, bwd = self._players[0].update(now), self._players[1].update(now)
        if fwd is not None and bwd is not None:
            log.debug("trace: %s", fwd)
            self._push(fwd, bwd)
        self._schedule_trace()

    async def __aenter__(self) -> Self:
        await self.start()
        return self

    async def __aexit__(self, t: type[BaseException] | None, e: BaseException | None, tb: TracebackType | None) -> None:
        await self.close()

    async def start(self) -> None:
        raise NotImplementedError

    async def close(self) -> None:
        raise NotImplementedError


class _ClientSide(asyncio.DatagramProtocol):
    def __init__(self, relay: UdpRelay) -> None:
        self.relay = relay

    def datagram_received(self, data: bytes, addr: Any) -> None:
        self.relay._from_client(data, addr)

    def error_received(self, exc: Exception) -> None:
        log.debug("udp relay, client side: %s", exc)


class _TargetSide(asyncio.DatagramProtocol):
    def __init__(self, relay: UdpRelay) -> None:
        self.relay = relay

    def datagram_received(self, data: bytes, addr: Any) -> None:
        self.relay._from_target(data)

    def error_received(self, exc: Exception) -> None:
        # e.g. ICMP port unreachable while the target is not up yet: UDP just loses it.
        log.debug("udp relay, target side: %s", exc)


class UdpRelay(_Relay):
    """UDP relay: datagrams from clients to `target` and replies back to the last client."""

    mode: Mode = "datagram"

    def _init(self) -> None:
        self.forward, self.backward = self._new_pair()
        self.client: Address | None = None
        self._listen_tr: asyncio.DatagramTransport | None = None
        self._target_tr: asyncio.DatagramTransport | None = None
        self._pumps: tuple[_Pump, _Pump] | None = None

    def _pairs(self) -> list[tuple[ImpairedPath, ImpairedPath]]:
        return [(self.forward, self.backward)]

    @property
    def listen_address(self) -> Address:
        """Where clients send (the real port when `listen` asked for port 0)."""
        assert self._listen_tr is not None, "start() first"
        host, port = self._listen_tr.get_extra_info("sockname")[:2]
        return host, port

    async def start(self) -> None:
        loop = asyncio.get_running_loop()
        self._loop = loop
        self._listen_tr, _ = await loop.create_datagram_endpoint(lambda: _ClientSide(self), local_addr=self.listen)
        self._target_tr, _ = await loop.create_datagram_endpoint(lambda: _TargetSide(self), remote_addr=self.target)
        self._pumps = (_Pump(loop, self.forward, self._to_target), _Pump(loop, self.backward, self._to_client))
        if self.armed:
            self._start_trace()

    def _from_client(self, data: bytes, addr: Any) -> None:
        assert self._loop is not None and self._pumps is not None
        self.client = (addr[0], addr[1])
        self.forward.submit(data, self._loop.time())
        self._pumps[0].kick()

    def _from_target(self, data: bytes) -> None:
        assert self._loop is not None and self._pumps is not None
        self.backward.submit(data, self._loop.time())
        self._pumps[1].kick()

    def _to_target(self, data: bytes) -> None:
        if self._target_tr is not None and not self._target_tr.is_closing():
            self._target_tr.sendto(data)

    def _to_client(self, data: bytes) -> None:
        if self.client is not None and self._listen_tr is not None and not self._listen_tr.is_closing():
            self._listen_tr.sendto(data, self.client)

    async def close(self) -> None:
        self._trace_timer.cancel()
        if self._pumps is not None:
            for p in self._pumps:
                p.close()
        for tr in (self._listen_tr, self._target_tr):
            if tr is not None:
                tr.close()


# What the relay reads ahead of its path: asyncio's stream buffer (it stops reading the socket
# beyond twice its limit) and the socket's receive buffer. Under a rate cap both are sized to
# about 100 ms at the cap (at least 2 KB), so that a full path pushes back on the sender's TCP
# at once, as a real bottleneck's drops would, instead of hiding seconds of data in buffers
# at voice bitrates (asyncio's default 64 KB is 2 minutes at 4 kbit/s).
STREAM_LIMIT = 1024
MIN_READ_AHEAD = 2048


def _read_ahead_bytes(config: ImpairmentConfig) -> int | None:
    if config.rate_kbps is None:
        return None  # the system's defaults
    return max(MIN_READ_AHEAD, int(config.rate_kbps * 1000 / 8 * 0.1))


def _small_receive_buffer(writer: asyncio.StreamWriter, size: int | None) -> None:
    sock = writer.get_extra_info("socket")
    if sock is not None and size is not None:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, size)


class _Connection:
    """One accepted TCP connection and its connection to the target."""

    def __init__(self, relay: TcpRelay, paths: tuple[ImpairedPath, ImpairedPath]) -> None:
        self.relay = relay
        self.forward, self.backward = paths
        self.tasks: list[asyncio.Task[None]] = []
        self.writers: list[asyncio.StreamWriter] = []

    async def run(self, client_r: asyncio.StreamReader, client_w: asyncio.StreamWriter) -> None:
        self.writers.append(client_w)
        fwd, bwd = self.relay.config
        _small_receive_buffer(client_w, _read_ahead_bytes(fwd))
        ahead = _read_ahead_bytes(bwd)
        try:
            target_r, target_w = await asyncio.open_connection(*self.relay.target, limit=max(STREAM_LIMIT, (ahead or 2**16) // 2))
            _small_receive_buffer(target_w, ahead)
        except OSError as e:
            log.warning("tcp relay: cannot connect to %s:%d: %s", *self.relay.target, e)
            client_w.close()
            return
        self.writers.append(target_w)
        self.tasks = [asyncio.create_task(self._pump(client_r, self.forward, target_w)), asyncio.create_task(self._pump(target_r, self.backward, client_w))]
        try:
            await asyncio.gather(*self.tasks)
        except (OSError, asyncio.IncompleteReadError) as e:
            log.debug("tcp relay connection ended: %s", e)
        finally:
            self.close()

    async def _pump(self, reader: asyncio.StreamReader, path: ImpairedPath, writer: asyncio.StreamWriter) -> None:
        loop = asyncio.get_running_loop()

        def deliver(data: bytes) -> None:
            if not writer.is_closing():
                writer.write(data)

        pump = _Pump(loop, path, deliver)
        try:
            while True:
                now = loop.time()
                wait = path.next_accept_time(now) - now
                if wait > 0:  # the bottleneck queue is full: stop reading, let TCP push back
                    await asyncio.sleep(wait)
                data = await reader.read(READ_BYTES)
                if not data:
                    break
                seg = path.config.segment_bytes
                now = loop.time()
                for i in range(0, len(data), seg):
                    path.submit(data[i : i + seg], now)
                pump.kick()
                await writer.drain()
            while path.in_flight:  # EOF: deliver what is in flight, then pass the EOF on
                nxt = path.next_due_time()
                await asyncio.sleep(max(0.0, (nxt or loop.time()) - loop.time()) + 0.001)
            pump.close()
            for data in path.due(loop.time()):
                deliver(data)
            if writer.can_write_eof() and not writer.is_closing():
                writer.write_eof()
            await writer.drain()
        finally:
            pump.close()

    def close(self) -> None:
        for t in self.tasks:
            t.cancel()
        for w in self.writers:
            w.close()


class TcpRelay(_Relay):
    """TCP relay: each accepted connection is joined to a new connection to `target`."""

    mode: Mode = "stream"

    def _init(self) -> None:
        self.connections: list[_Connection] = []
        self._server: asyncio.Server | None = None
        self._handlers: set[asyncio.Task[None]] = set()
        # The next this many connections are closed at once, unforwarded (a connection attempt
        # lost on the way: tests of a caller's retry); `dropped_connections` counts them.
        self.drop_connections = 0
        self.dropped_connections = 0

    def _pairs(self) -> list[tuple[ImpairedPath, ImpairedPath]]:
        return [(c.forward, c.backward) for c in self.connections]

    @property
    def listen_address(self) -> Address:
        assert self._server is not None, "start() first"
        host, port = self._server.sockets[0].getsockname()[:2]
        return host, port

    async def start(self) -> None:
        self._loop = asyncio.get_running_loop()
        ahead = _read_ahead_bytes(self.config[0])
        self._server = await asyncio.start_server(self._accept, *self.listen, limit=max(STREAM_LIMIT, (ahead or 2**16) // 2))
        if self.armed:
            self._start_trace()

    async def _accept(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        if self.drop_connections > 0:
            self.drop_connections -= 1
            self.dropped_connections += 1
            writer.close()
            return
        conn = _Connection(self, self._new_pair())
        self.connections.append(conn)
        task = asyncio.current_task()
        if task is not None:
            self._handlers.add(task)
        try:
            await conn.run(reader, writer)
        except asyncio.CancelledError:
            # close() cancels us: end quietly, since asyncio.streams reports a handler task
            # that ends cancelled as an unhandled exception.
            conn.close()
        finally:
            if task is not None:
                self._handlers.discard(task)

    async def close(self) -> None:
        self._trace_timer.cancel()
        if self._server is not None:
            self._server.close()
        for c in self.connections:
            c.close()
        for t in list(self._handlers):
            t.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await asyncio.gather(*self._handlers, return_exceptions=True)
        if self._server is not None:
            with contextlib.suppress(Exception):
                await asyncio.wait_for(self._server.wait_closed(), 1.0)
