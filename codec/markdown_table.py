"""A markdown table, the form every report of the project prints (evaluation, benches).

Cells come formatted by the caller (the digits are the caller's business); `None` is shown
as `-`, a `|` inside a cell is escaped and a line break becomes a space, so each row keeps
its header's number of columns. `row` lets a long bench print each row as it is measured.
"""

from __future__ import annotations

from collections.abc import Collection, Iterable, Sequence
from dataclasses import dataclass, field


def _cell(value: object) -> str:
    text = "-" if value is None else str(value)
    return " ".join(text.replace("|", "\\|").splitlines()) if text else text


@dataclass(frozen=True)
class MarkdownTable:
    columns: Sequence[str]
    right: Collection[str] = field(default=frozenset())  # columns aligned right (numbers)

    def head(self) -> str:
        """The header line and the alignment line under it."""
        rule = "|" + "".join("---:|" if name in self.right else "---|" for name in self.columns)
        return f"{self.row(self.columns)}\n{rule}"

    def row(self, cells: Sequence[object]) -> str:
        if len(cells) != len(self.columns):
            raise ValueError(f"a row of {len(cells)} cells under {len(self.columns)} columns")
        return "| " + " | ".join(_cell(c) for c in cells) + " |"

    def render(self, rows: Iterable[Sequence[object]]) -> str:
        return "\n".join([self.head(), *(self.row(r) for r in rows)])
