"""Named network scenarios: a base impairment, an optional trace, a duration.

Scenarios are TOML files under `netsim/scenarios/` (or anywhere, by path), validated by
pydantic, so experiments, the relay CLI and the Docker setup all read the same definitions:

    name = "capacity-drop"
    description = "..."
    duration_s = 40
    [impairment]                 # an ImpairmentConfig, applied to both directions
    queue_ms = 200
    [[trace]]                    # inline rows, or trace_file = "x.csv" (relative to the TOML)
    time_s = 0
    capacity_kbps = 16

`overhead_bytes` is left to the transport unless the scenario sets it: the relays see UDP
payloads or TCP stream bytes, so counting the wire means adding the IP/UDP (28 B) or IP/TCP
(40 B) headers the relay does not see; `Scenario.config_for(transport)` does that.
"""

from __future__ import annotations

import tomllib
from pathlib import Path
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

from netsim.impairment import ImpairmentConfig, one_line_error
from netsim.trace import Trace, TraceError, TraceRow, load_trace

SCENARIO_DIR = Path(__file__).resolve().parent / "scenarios"
IP_UDP_OVERHEAD = 28  # IPv4 20 + UDP 8
IP_TCP_OVERHEAD = 40  # IPv4 20 + TCP 20 (timestamps would add 12)
Transport = Literal["udp", "tcp"]


class ScenarioError(ValueError):
    """A scenario that cannot be loaded; the message is one line."""


class Scenario(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    name: str = Field(min_length=1, max_length=64)
    description: str = ""
    duration_s: float = Field(gt=0.0, le=24 * 3600)
    impairment: ImpairmentConfig = ImpairmentConfig()
    overhead_bytes: int | None = Field(default=None, ge=0, le=65_535)  # None: the transport's headers
    trace: Trace | None = None

    @model_validator(mode="after")
    def _trace_within_duration(self) -> Scenario:
        if self.trace is not None and self.trace.last_change_s >= self.duration_s:
            raise ValueError(f"the trace changes at {self.trace.last_change_s:g} s, after duration_s {self.duration_s:g}")
        return self

    def config_for(self, transport: Transport) -> ImpairmentConfig:
        """The base config with wire overhead filled in for `transport`."""
        overhead = self.overhead_bytes
        if overhead is None:
            overhead = IP_UDP_OVERHEAD if transport == "udp" else IP_TCP_OVERHEAD
        return self.impairment.model_copy(update={"overhead_bytes": overhead})

    def config_at(self, t: float, transport: Transport) -> ImpairmentConfig:
        base = self.config_for(transport)
        return base if self.trace is None else self.trace.config_at(t, base)


def scenario_names() -> list[str]:
    return sorted(p.stem for p in SCENARIO_DIR.glob("*.toml"))


def load_scenario(name_or_path: str | Path) -> Scenario:
    """A shipped scenario by name (`capacity-drop`) or a TOML file by path."""
    text = str(name_or_path)
    path = Path(text)
    if not (path.suffix == ".toml" or "/" in text or path.exists()):
        path = SCENARIO_DIR / f"{text}.toml"
        if not path.is_file():
            raise ScenarioError(f"unknown scenario {text!r} (shipped: {', '.join(scenario_names())})")
    try:
        data = tomllib.loads(path.read_text(encoding="utf-8"))
    except OSError as e:
        raise ScenarioError(f"{path}: cannot read: {e.strerror or e}") from None
    except (tomllib.TOMLDecodeError, UnicodeDecodeError) as e:
        raise ScenarioError(f"{path}: not TOML: {e}") from None
    trace_file = data.pop("trace_file", None)
    if trace_file is not None:
        if "trace" in data:
            raise ScenarioError(f"{path}: give trace or trace_file, not both")
        if not isinstance(trace_file, str):
            raise ScenarioError(f"{path}: trace_file must be a string")
        try:
            data["trace"] = load_trace(path.parent / trace_file)
        except TraceError as e:
            raise ScenarioError(str(e)) from None
    elif isinstance(data.get("trace"), list):
        rows: list[TraceRow] = []
        for i, row in enumerate(data["trace"]):
            try:
                rows.append(TraceRow.model_validate(row))
            except ValidationError as e:
                raise ScenarioError(f"{path}: trace row {i}: {one_line_error(e)}") from None
        try:
            data["trace"] = Trace(rows=tuple(rows))
        except ValidationError as e:
            raise ScenarioError(f"{path}: trace: {one_line_error(e)}") from None
    try:
        return Scenario.model_validate(data)
    except ValidationError as e:
        raise ScenarioError(f"{path}: {one_line_error(e)}") from None
