"""Time-varying impairment: a trace of rows `time_s -> capacity, loss, delay, jitter`.

A trace is a step function: a row holds from its `time_s` until the next row's, and the last
row holds for ever. Empty cells (CSV) or absent / null keys (JSON lines) keep the base
config's value, so a trace can vary only the capacity of a link whose queue, overhead and
jitter shape come from elsewhere. `loss` in a row is a Bernoulli rate; bursty loss belongs in
the base config (a row without `loss` keeps it).

Files are parsed strictly (a typo in a column name, a time that goes backwards or a loss of
15 instead of 0.15 is an error naming the file and line), because a scenario that silently
reads as "no impairment" produces a plausible and wrong experiment.

`TracePlayer` is the sans-I/O piece the relays use: started at arm time, it says when the
next row begins and hands back the config to switch to.
"""

from __future__ import annotations

import bisect
import csv
import io
import json
from pathlib import Path

from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

from netsim.impairment import BernoulliLoss, ImpairmentConfig, one_line_error

COLUMNS = ("time_s", "capacity_kbps", "loss", "delay_ms", "jitter_ms")


class TraceError(ValueError):
    """A trace that cannot be used; the message is one line naming the file and line."""


class TraceRow(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    time_s: float = Field(ge=0.0, allow_inf_nan=False)
    capacity_kbps: float | None = Field(default=None, gt=0.0, allow_inf_nan=False)
    loss: float | None = Field(default=None, ge=0.0, le=1.0)
    delay_ms: float | None = Field(default=None, ge=0.0, le=60_000)
    jitter_ms: float | None = Field(default=None, ge=0.0, le=60_000)

    def apply(self, base: ImpairmentConfig) -> ImpairmentConfig:
        """The base config with this row's values put in."""
        update: dict[str, object] = {}
        if self.capacity_kbps is not None:
            update["rate_kbps"] = self.capacity_kbps
        if self.loss is not None:
            update["loss"] = BernoulliLoss(rate=self.loss)
        if self.delay_ms is not None:
            update["delay_ms"] = self.delay_ms
        if self.jitter_ms is not None:
            update["jitter_ms"] = self.jitter_ms
        # model_validate (not model_copy) so the result is checked as a whole.
        return ImpairmentConfig.model_validate({**base.model_dump(), **update})


class Trace(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    rows: tuple[TraceRow, ...] = Field(min_length=1)

    @model_validator(mode="after")
    def _ordered(self) -> Trace:
        if self.rows[0].time_s != 0:
            raise ValueError(f"the first row must be at time_s 0, not {self.rows[0].time_s:g}")
        for prev, row in zip(self.rows, self.rows[1:]):
            if row.time_s <= prev.time_s:
                raise ValueError(f"time_s must increase: {row.time_s:g} after {prev.time_s:g}")
        return self

    @property
    def times(self) -> list[float]:
        return [r.time_s for r in self.rows]

    @property
    def last_change_s(self) -> float:
        return self.rows[-1].time_s

    def index_at(self, t: float) -> int:
        """Index of the row in force at `t` seconds into the trace (the first row before 0)."""
        return max(0, bisect.bisect_right(self.times, t) - 1)

    def row_at(self, t: float) -> TraceRow:
        return self.rows[self.index_at(t)]

    def next_change_after(self, t: float) -> float | None:
        """Trace time of the first row that starts after `t` (None: no more changes)."""
        i = bisect.bisect_right(self.times, t)
        return self.rows[i].time_s if i < len(self.rows) else None

    def config_at(self, t: float, base: ImpairmentConfig) -> ImpairmentConfig:
        return self.row_at(t).apply(base)


class TracePlayer:
    """Follows a trace in (injected) time: `start(now)`, then `update(now)` whenever
    `next_change_time()` passes; update returns a new config only when the row changed."""

    def __init__(self, trace: Trace, base: ImpairmentConfig) -> None:
        self.trace = trace
        self.base = base
        self.started_at: float | None = None
        self._index: int | None = None

    def start(self, now: float) -> ImpairmentConfig:
        self.started_at = now
        self._index = 0
        return self.trace.rows[0].apply(self.base)

    def set_base(self, base: ImpairmentConfig) -> ImpairmentConfig:
        """A new base (e.g. from `set_config`); returns the config in force with it."""
        self.base = base
        return self.trace.rows[self._index or 0].apply(base)

    def update(self, now: float) -> ImpairmentConfig | None:
        if self.started_at is None:
            return None
        i = self.trace.index_at(now - self.started_at)
        if i == self._index:
            return None
        self._index = i
        return self.trace.rows[i].apply(self.base)

    def next_change_time(self) -> float | None:
        """Absolute time of the next row (None if not started or at the last row)."""
        if self.started_at is None or self._index is None:
            return None
        nxt = self.trace.next_change_after(self.trace.rows[self._index].time_s)
        return None if nxt is None else self.started_at + nxt


# -- parsing -----------------------------------------------------------------------------------
def _row(values: dict[str, object], where: str) -> TraceRow:
    try:
        return TraceRow.model_validate(values)
    except ValidationError as e:
        raise TraceError(f"{where}: {one_line_error(e)}") from None


def _number(cell: str, column: str, where: str) -> float | None:
    cell = cell.strip()
    if cell == "":
        if column == "time_s":
            raise TraceError(f"{where}: time_s is empty")
        return None
    try:
        return float(cell)
    except ValueError:
        raise TraceError(f"{where}: {column} is not a number: {cell!r}") from None


def parse_csv(text: str, source: str = "<trace>") -> Trace:
    """CSV with a header naming `time_s` and any of the other COLUMNS; `#` lines are comments."""
    lines = [(n, line) for n, line in enumerate(text.splitlines(), 1) if line.strip() and not line.lstrip().startswith("#")]
    if not lines:
        raise TraceError(f"{source}: no header and no rows")
    header_no, header_line = lines[0]
    header = [h.strip() for h in next(csv.reader(io.StringIO(header_line)))]
    for h in header:
        if h not in COLUMNS:
            raise TraceError(f"{source}:{header_no}: unknown column {h!r} (known: {', '.join(COLUMNS)})")
    if "time_s" not in header:
        raise TraceError(f"{source}:{header_no}: the header has no time_s column")
    if len(set(header)) != len(header):
        raise TraceError(f"{source}:{header_no}: a column is named twice")
    rows: list[TraceRow] = []
    for n, line in lines[1:]:
        where = f"{source}:{n}"
        cells = next(csv.reader(io.StringIO(line)))
        if len(cells) != len(header):
            raise TraceError(f"{where}: {len(cells)} cells, the header has {len(header)}")
        values = {h: _number(c, h, where) for h, c in zip(header, cells)}
        rows.append(_row({k: v for k, v in values.items() if v is not None}, where))
    return _trace(rows, source)


def parse_jsonl(text: str, source: str = "<trace>") -> Trace:
    """One JSON object a line: {"time_s": 0, "capacity_kbps": 16, ...}; null keeps the base."""
    rows: list[TraceRow] = []
    for n, line in enumerate(text.splitlines(), 1):
        if not line.strip() or line.lstrip().startswith("#"):
            continue
        where = f"{source}:{n}"
        try:
            obj = json.loads(line)
        except json.JSONDecodeError as e:
            raise TraceError(f"{where}: not JSON: {e.msg}") from None
        if not isinstance(obj, dict):
            raise TraceError(f"{where}: expected a JSON object, got {type(obj).__name__}")
        rows.append(_row({k: v for k, v in obj.items() if v is not None}, where))
    return _trace(rows, source)


def _trace(rows: list[TraceRow], source: str) -> Trace:
    try:
        return Trace(rows=tuple(rows))
    except ValidationError as e:
        raise TraceError(f"{source}: {one_line_error(e)}") from None


def load_trace(path: str | Path) -> Trace:
    """A trace file: `.csv`, or `.jsonl` / `.ndjson` (JSON lines)."""
    p = Path(path)
    try:
        text = p.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as e:
        reason = e.strerror if isinstance(e, OSError) and e.strerror else str(e)
        raise TraceError(f"{p}: cannot read: {reason}") from None
    suffix = p.suffix.lower()
    if suffix == ".csv":
        return parse_csv(text, str(p))
    if suffix in (".jsonl", ".ndjson"):
        return parse_jsonl(text, str(p))
    raise TraceError(f"{p}: unknown trace format {suffix!r} (use .csv or .jsonl)")
