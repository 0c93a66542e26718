"""codec/markdown_table.py: whatever the cells hold, every row keeps its header's columns."""

from __future__ import annotations

import re

import pytest
from hypothesis import given
from hypothesis import strategies as st

from codec.markdown_table import MarkdownTable

_UNESCAPED_PIPE = re.compile(r"(?<!\\)\|")
# Any text but a backslash (a cell ending in one would escape its closing pipe; no report writes
# one), with the characters that could break a row drawn often.
_text = st.text(st.one_of(st.sampled_from("|\n\r -"), st.characters(blacklist_characters="\\")), max_size=12)
_cell = st.one_of(st.none(), st.integers(), st.floats(allow_nan=True), _text)


def _columns(line: str) -> int:
    assert line.startswith(("| ", "|-")) and line.endswith("|"), line
    return len(_UNESCAPED_PIPE.split(line)) - 2


@given(st.integers(1, 6).flatmap(lambda n: st.tuples(st.lists(_text, min_size=n, max_size=n), st.lists(st.lists(_cell, min_size=n, max_size=n), max_size=5))))
def test_every_row_has_the_header_s_number_of_cells(table: tuple[list[str], list[list[object]]]) -> None:
    header, rows = table
    text = MarkdownTable(header).render(rows)
    lines = text.split("\n")
    assert len(lines) == 2 + len(rows)
    assert all(_columns(line) == len(header) for line in lines), text


def test_layout_alignment_and_missing_values() -> None:
    table = MarkdownTable(["codec", "kbps"], right={"kbps"})
    assert table.render([["ours", 6], ["opus", None]]) == "| codec | kbps |\n|---|---:|\n| ours | 6 |\n| opus | - |"
    assert table.row(["a|b", "two\nlines"]) == "| a\\|b | two lines |"


def test_a_row_of_the_wrong_width_is_a_bug() -> None:
    with pytest.raises(ValueError, match="2 cells under 3 columns"):
        MarkdownTable(["a", "b", "c"]).row([1, 2])
