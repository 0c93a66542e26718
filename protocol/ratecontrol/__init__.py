"""Sender-side rate control (sans-I/O): receiver feedback in, a `SendPlan` out.

One concept a module:
- `wire`: what a plan costs on the wire, and rates in bit/s as a model's stage count;
- `delivery`: loss and received rates from the feedback's cumulative counters;
- `estimator`: the bandwidth estimate (loss above the path's inherent loss, GCC's delay signal, our send backlog);
- `layers`: the estimate as (stages, frames per packet), probing up and leaping carefully;
- `protection`: redundant coarse copies of earlier frames under loss;
- `draining`: thinning our packets out to empty a queue our own excess left;
- `plan`: what planning reads (`PathReport`) and writes (`SendPlan`);
- `policy`: `RatePolicy`, which runs them all for each feedback report.
The measurements behind the thresholds are in docs/protocol.md, next to their commands.
"""

from protocol.ratecontrol.delivery import Counters, Delivery, DeliveryWindow
from protocol.ratecontrol.draining import Drainer, DrainSettings
from protocol.ratecontrol.estimator import BandwidthEstimator
from protocol.ratecontrol.layers import FLOOR_FRAMES_PER_PACKET, MAX_UP_BPS, PROBE_ABORT_MS, PROBE_FAIL_S, LayerController, RateDecision
from protocol.ratecontrol.plan import BURST_HORIZON_FRAMES, PathReport, SendPlan, burst_spacing
from protocol.ratecontrol.policy import START_BPS, START_ONE_FRAME_BPS, RatePolicy
from protocol.ratecontrol.protection import ONE_FRAME_MIN_BPS, REDUNDANT_BPS, Protection, ProtectionSettings
from protocol.ratecontrol.wire import stages_for_bps, wire_bps

__all__ = [
    "BURST_HORIZON_FRAMES",
    "FLOOR_FRAMES_PER_PACKET",
    "MAX_UP_BPS",
    "ONE_FRAME_MIN_BPS",
    "PROBE_ABORT_MS",
    "PROBE_FAIL_S",
    "REDUNDANT_BPS",
    "START_BPS",
    "START_ONE_FRAME_BPS",
    "BandwidthEstimator",
    "Counters",
    "Delivery",
    "DeliveryWindow",
    "DrainSettings",
    "Drainer",
    "LayerController",
    "PathReport",
    "Protection",
    "ProtectionSettings",
    "RateDecision",
    "RatePolicy",
    "SendPlan",
    "burst_spacing",
    "stages_for_bps",
    "wire_bps",
]
