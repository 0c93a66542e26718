"""Rate-control and packetizer vectors for the page (web/static/rate.js, packetizer.js).

The Python `RatePolicy` is driven through a simulated path (a bottleneck whose capacity steps
down and up, a drop-tail queue, random loss that redundancy partly recovers) and every report
it read is written with the plan it chose; the page's controller must choose the same plans
from the same reports (web/test/rate.test.js). The path only makes the reports realistic (they
depend on the plans, as on a real link); the vectors hold the reports, not the path.
The packetizer's vectors are frames pushed under a sequence of plans and the packets (or
skips) that came out.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from protocol.packetizer import Packetizer, Send
from protocol.packets import OVERHEAD_WEBRTC, OVERHEAD_WEBSOCKET, Frame
from protocol.ratecontrol import RatePolicy, SendPlan

FRAME_S, REPORT_S = 0.02, 0.1


@dataclass(frozen=True)
class Scenario:
    name: str
    max_layers: int
    overhead: int
    drain_above_ms: float | None
    seconds: float
    capacity: tuple[tuple[float, float], ...]  # (from time s, bit/s on the wire)
    loss: tuple[tuple[float, float], ...]  # (from time s, random loss)
    backlog: tuple[float, float, int]  # (from, to, bytes unsent in our socket)
    queue_limit_s: float = 0.25  # the bottleneck's buffer, at its capacity: a drop-tail queue
    adapt: bool = True
    protect: bool = True


SCENARIOS = (
    # The browser test's listener (6 kbit/s: 30 layers) on a data channel.
    Scenario(
        "webrtc-30",
        30,
        OVERHEAD_WEBRTC,
        None,
        30.0,
        ((0, 100e3), (5, 30e3), (10, 15e3), (14, 100e3)),
        ((0, 0.0), (16, 0.05), (20, 0.15), (24, 0.0)),
        (8.0, 8.4, 3000),
    ),
    # Every layer of the default model on the websocket, which drains its queue.
    Scenario(
        "websocket-80",
        80,
        OVERHEAD_WEBSOCKET,
        60.0,
        20.0,
        ((0, 60e3), (6, 12e3), (8, 3e3), (9.5, 12e3), (12, 60e3)),
        ((0, 0.0), (14, 0.03), (18, 0.0)),
        (3.0, 3.3, 2500),
        queue_limit_s=0.6,
    ),
    # A cap just above what 30 layers at two frames a packet cost: leaps to fewer are refused
    # and blocked, until the cap rises.
    Scenario("webrtc-30-cap", 30, OVERHEAD_WEBRTC, None, 40.0, ((0, 30e3), (28, 45e3)), ((0, 0.0),), (0.0, 0.0, 0)),
    # No redundancy (`--no-protect`): 10 % random loss is learnt as the path's own after a cut
    # and then holds, 40 % loss cuts again, and a capacity drop's queue cuts as ever.
    Scenario(
        "webrtc-30-unprotected",
        30,
        OVERHEAD_WEBRTC,
        None,
        30.0,
        ((0, 100e3), (26, 14e3)),
        ((0, 0.0), (2, 0.10), (14, 0.4), (17, 0.10)),
        (0.0, 0.0, 0),
        protect=False,
    ),
    # No adaptation (`--no-adapt`): the ceiling always, with redundancy under loss.
    Scenario("fixed-30", 30, OVERHEAD_WEBRTC, None, 8.0, ((0, 100e3),), ((0, 0.0), (2, 0.05), (4, 0.2), (6, 0.0)), (0.0, 0.0, 0), adapt=False),
)


def _at(schedule: tuple[tuple[float, float], ...], t: float) -> float:
    return [value for start, value in schedule if start <= t][-1]


# A step is one list (the report's fields, then the plan's): the file stays small and a step a line.
REPORT_FIELDS = ("t", "highest_seq", "received", "received_bytes", "recovered", "queue_delay_ms", "send_buffer_bytes")
PLAN_FIELDS = ("layers", "fpp", "redundant_frames", "redundant_layers", "redundant_spacing", "send_every", "wire_bps", "estimate_bps")


def _plan(plan: SendPlan) -> list[float]:
    return [
        plan.layers,
        plan.frames_per_packet,
        plan.redundant_frames,
        plan.redundant_layers,
        plan.redundant_spacing,
        plan.send_every,
        plan.wire_bps,
        plan.estimate_bps,
    ]


def rate_scenario(s: Scenario, bits: int) -> dict:
    rng = np.random.default_rng(7)
    policy = RatePolicy(s.max_layers, bits, FRAME_S, s.overhead, adapt=s.adapt, protect=s.protect, drain_above_ms=s.drain_above_ms)
    seq = received = received_bytes = recovered = 0
    queue_bits = formed = leaving = arrived = 0.0
    steps = []
    for step in range(1, round(s.seconds / REPORT_S) + 1):
        t = round(step * REPORT_S, 3)
        plan = policy.plan
        capacity = _at(s.capacity, t)
        packet_bytes = plan.wire_bps * plan.send_every * plan.frames_per_packet * FRAME_S / 8  # overhead included
        formed += REPORT_S / FRAME_S / plan.frames_per_packet
        leaving += math.floor(formed) / plan.send_every
        formed -= math.floor(formed)
        sent = math.floor(leaving)
        leaving -= sent
        seq += sent
        queue_bits += sent * packet_bytes * 8
        delivered_bits = min(queue_bits, capacity * REPORT_S)
        queue_bits -= delivered_bits
        queue_bits = min(queue_bits, capacity * s.queue_limit_s)  # drop-tail: the excess is lost
        arrived += delivered_bits / (8 * packet_bytes)
        got = math.floor(arrived)
        arrived -= got
        lost = int(rng.binomial(got, _at(s.loss, t)))
        got -= lost
        if plan.redundant_frames:
            recovered += round(0.8 * lost * plan.frames_per_packet)
        received += got
        received_bytes += round(got * (packet_bytes - s.overhead))
        queue_ms = round(1000 * queue_bits / capacity)  # whole ms, as the feedback carries it
        backlog = s.backlog[2] if s.backlog[0] <= t < s.backlog[1] else 0
        report = [t, max(0, seq - 1), received, received_bytes, recovered, queue_ms, backlog]
        steps.append(report + _plan(policy.on_feedback(*report)))
    return {
        "name": s.name,
        "fields": [*REPORT_FIELDS, *PLAN_FIELDS],
        "max_layers": s.max_layers,
        "bits": bits,
        "frame_s": FRAME_S,
        "overhead": s.overhead,
        "drain_above_ms": s.drain_above_ms,
        "adapt": s.adapt,
        "protect": s.protect,
        "initial": _plan(RatePolicy(s.max_layers, bits, FRAME_S, s.overhead, adapt=s.adapt, protect=s.protect, drain_above_ms=s.drain_above_ms).plan),
        "steps": steps,
    }


def _send_plan(layers: int, fpp: float, frames: int = 0, red_layers: int = 0, wire: float = 20e3, every: int = 1, spacing: int = 1) -> SendPlan:
    return SendPlan(layers, fpp, frames, red_layers, wire, wire, every, spacing)


# (frames pushed under it, the plan, bytes unsent in the transport)
PACKETIZER_PLANS = (
    (4, _send_plan(30, 1), 0),
    (6, _send_plan(30, 3), 0),
    (6, _send_plan(24, 1.5), 0),
    (5, _send_plan(24, 1, frames=1, red_layers=10), 0),
    (6, _send_plan(20, 2, frames=4, red_layers=3, spacing=2), 0),
    (6, _send_plan(12, 1, every=3), 0),
    (3, _send_plan(12, 1, wire=16e3), 500),
    (3, _send_plan(12, 1, frames=2, red_layers=5), 100),
)


def packetizer_case(bits: int, hop: int = 320) -> dict:
    rng = np.random.default_rng(11)
    packetizer = Packetizer(hop, bits)
    pushes = []
    for count, plan, backlog in PACKETIZER_PLANS:
        for _ in range(count):
            codes = rng.integers(0, 1 << bits, plan.layers)
            rms = float(rng.choice([0.0, 0.001, 0.1]))
            out = packetizer.push(Frame(codes), rms, plan, backlog)
            if isinstance(out, Send):
                packetizer.sent(out, 0.0)
                result: dict | None = {"hex": out.data.hex()}
            else:
                result = None if out is None else {"skip": out.reason, "frames": out.frames}
            pushes.append({"codes": codes.tolist(), "rms": rms, "plan": _plan(plan), "backlog": backlog, "out": result})
    return {"hop": hop, "plan_fields": PLAN_FIELDS, "pushes": pushes}
