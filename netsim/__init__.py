"""Network impairment for calls: a pure impaired-path model, time-varying traces, named
scenarios, asyncio UDP/TCP relays and a network-namespace runner (see docs/netsim.md)."""

from netsim.impairment import BernoulliLoss, GilbertElliottLoss, ImpairedPath, ImpairmentConfig, PathCounters
from netsim.scenario import Scenario, ScenarioError, load_scenario, scenario_names
from netsim.trace import Trace, TraceError, TracePlayer, TraceRow, load_trace

__all__ = [
    "BernoulliLoss",
    "GilbertElliottLoss",
    "ImpairedPath",
    "ImpairmentConfig",
    "PathCounters",
    "Scenario",
    "ScenarioError",
    "Trace",
    "TraceError",
    "TracePlayer",
    "TraceRow",
    "load_scenario",
    "load_trace",
    "scenario_names",
]
