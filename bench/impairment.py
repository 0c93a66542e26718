"""What the network model does to packets, measured in simulated time: `python -m bench.impairment`.

The figures docs/netsim.md gives for `netsim.impairment.ImpairedPath` (the model the relays
and the experiments share) come from here: a seeded path is fed a packet every 20 ms (no
sockets, no clock: a second or two of CPU) and what comes out is counted.

- **cap**: 72-byte packets with 28 bytes of overhead (40 kbit/s of wire bytes offered) into a
  24 kbit/s cap behind a 200 ms drop-tail queue: the delivered wire rate, the share dropped at
  the queue, and the longest time a packet spent in the queue and on the wire.
- **normal jitter**: 50 +/- 10 ms (standard deviation): mean and standard deviation of the delay.
- **jitter-50** (the shipped scenario, uniform 50 +/- 30 ms): mean, standard deviation and range
  of the delay; in datagram mode the share of packets that arrive after a later-sent one; in
  stream mode (in order) the delay's mean and range.
"""

from __future__ import annotations

import argparse
import json
import statistics
from dataclasses import dataclass

from codec.markdown_table import MarkdownTable
from netsim.impairment import ImpairedPath, ImpairmentConfig, Mode
from netsim.scenario import load_scenario

FRAME_S = 0.02
PACKET_BYTES = 72


@dataclass(frozen=True)
class Delays:
    """One-way delays (ms) of the packets that came through, in send order, and how many
    arrived after a packet sent later than them."""

    delays_ms: list[float]
    overtaken: int

    @property
    def mean(self) -> float:
        return statistics.fmean(self.delays_ms)

    @property
    def stdev(self) -> float:
        return statistics.pstdev(self.delays_ms)


def run_path(config: ImpairmentConfig, packets: int, mode: Mode = "datagram", seed: int = 0) -> tuple[ImpairedPath, Delays]:
    """Send `packets` numbered packets one a frame through a path; collect every arrival."""
    path = ImpairedPath(config, mode=mode, rng=seed)
    sent_at: dict[int, float] = {}
    arrivals: list[tuple[int, float]] = []  # (packet number, arrival time), in arrival order

    def collect(now: float) -> None:
        for data in path.due(now):
            arrivals.append((int.from_bytes(data[:4], "big"), now))

    for i in range(packets):
        now = i * FRAME_S
        while (due_at := path.next_due_time()) is not None and due_at <= now:
            collect(due_at)
        sent_at[i] = now
        path.submit(i.to_bytes(4, "big") + bytes(PACKET_BYTES - 4), now)
    while (due_at := path.next_due_time()) is not None:
        collect(due_at)
    delays = [(t - sent_at[n]) * 1000 for n, t in sorted(arrivals)]
    highest = -1
    overtaken = 0
    for n, _ in arrivals:  # a packet is overtaken when one sent after it already arrived
        if n < highest:
            overtaken += 1
        highest = max(highest, n)
    return path, Delays(delays, overtaken)


def measure(packets: int = 20_000, seed: int = 0) -> dict[str, float]:
    """Every figure of the module's docstring, by name."""
    cap = ImpairmentConfig(rate_kbps=24.0, queue_ms=200.0, overhead_bytes=28)
    cap_path, cap_delays = run_path(cap, packets, seed=seed)
    c = cap_path.counters
    seconds = packets * FRAME_S
    _, normal = run_path(ImpairmentConfig(delay_ms=50.0, jitter_ms=10.0), packets, seed=seed)
    jitter50 = load_scenario("jitter-50").impairment
    _, uniform = run_path(jitter50, packets, seed=seed)
    _, stream = run_path(jitter50, packets, mode="stream", seed=seed)
    serialisation_ms = cap.wire_bytes(PACKET_BYTES) * 8 / 24.0  # bits / (kbit/s) = ms
    return {
        "cap_offered_kbps": cap.wire_bytes(PACKET_BYTES) * 8 / FRAME_S / 1000,
        "cap_delivered_kbps": c.delivered_wire_bytes * 8 / seconds / 1000,
        "cap_dropped_share": c.dropped_queue / c.sent,
        "cap_longest_ms": max(cap_delays.delays_ms),
        "cap_serialisation_ms": serialisation_ms,
        "normal_mean_ms": normal.mean,
        "normal_stdev_ms": normal.stdev,
        "jitter50_mean_ms": uniform.mean,
        "jitter50_stdev_ms": uniform.stdev,
        "jitter50_min_ms": min(uniform.delays_ms),
        "jitter50_max_ms": max(uniform.delays_ms),
        "jitter50_overtaken_share": uniform.overtaken / len(uniform.delays_ms),
        "jitter50_stream_mean_ms": stream.mean,
        "jitter50_stream_min_ms": min(stream.delays_ms),
        "jitter50_stream_max_ms": max(stream.delays_ms),
    }


def table(m: dict[str, float]) -> str:
    rows = [
        ["24 kbit/s cap, 200 ms queue", "offered / delivered wire kbit/s", f"{m['cap_offered_kbps']:.2f} / {m['cap_delivered_kbps']:.2f}"],
        ["", "dropped at the queue", f"{m['cap_dropped_share']:.1%}"],
        ["", "longest delay ms (queue + own serialisation)", f"{m['cap_longest_ms']:.1f} (200 + {m['cap_serialisation_ms']:.1f})"],
        ["normal 50 +/- 10 ms", "mean / standard deviation ms", f"{m['normal_mean_ms']:.1f} / {m['normal_stdev_ms']:.1f}"],
        ["jitter-50, datagrams", "mean / standard deviation ms", f"{m['jitter50_mean_ms']:.1f} / {m['jitter50_stdev_ms']:.1f}"],
        ["", "range ms", f"{m['jitter50_min_ms']:.1f}-{m['jitter50_max_ms']:.1f}"],
        ["", "arrive after a later packet", f"{m['jitter50_overtaken_share']:.1%}"],
        [
            "jitter-50, stream (in order)",
            "mean ms, range ms",
            f"{m['jitter50_stream_mean_ms']:.1f}, {m['jitter50_stream_min_ms']:.1f}-{m['jitter50_stream_max_ms']:.1f}",
        ],
    ]
    return MarkdownTable(["path", "figure", "value"]).render(rows)


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m bench.impairment", description=__doc__.splitlines()[0])
    p.add_argument("--packets", type=int, default=20_000, help="packets a path (one every 20 ms)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--json", action="store_true", help="print the figures as JSON instead of a table")
    args = p.parse_args(argv)
    if args.packets < 100:
        p.error("--packets must be at least 100")
    figures = measure(args.packets, args.seed)
    print(json.dumps(figures, indent=1) if args.json else table(figures))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
