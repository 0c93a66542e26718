"""Shared command-line checks: tokens, numbered outputs that never overwrite, stats as JSON lines."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from call.options import append_json_line, call_output, check_denoise, check_url, read_token
from codec.errors import CodecError


def test_read_token_sources_and_limits(tmp_path: Path) -> None:
    assert read_token("argv", None, {}) == "argv"
    assert read_token("", None, {"SSVOIP_TOKEN": "env"}) == "env"
    assert read_token("argv", None, {"SSVOIP_TOKEN": "env"}) == "argv"
    f = tmp_path / "t"
    f.write_text("  file-token \n")
    assert read_token("", f, {"SSVOIP_TOKEN": "env"}) == "file-token"
    with pytest.raises(CodecError, match="not both"):
        read_token("argv", f, {})
    with pytest.raises(CodecError, match="cannot read"):
        read_token("", tmp_path / "missing", {})
    with pytest.raises(CodecError, match="at most 256"):
        read_token("", None, {"SSVOIP_TOKEN": "x" * 257})
    assert len(read_token("x" * 256, None, {})) == 256


def test_call_outputs_never_overwrite_without_force(tmp_path: Path) -> None:
    out = tmp_path / "out.wav"
    assert call_output(out, 1, False) == out
    (tmp_path / "out-2.wav").write_bytes(b"mine")
    assert call_output(out, 2, False) == tmp_path / "out-3.wav"
    assert call_output(out, 2, True) == tmp_path / "out-2.wav"


def test_stats_are_appended_one_json_line_a_call(tmp_path: Path) -> None:
    stats = tmp_path / "s.json"
    append_json_line(stats, {"call": 1})
    append_json_line(stats, {"call": 2})
    assert [json.loads(line)["call"] for line in stats.read_text().splitlines()] == [1, 2]


@pytest.mark.parametrize("url", ["notaurl", "http://h:1", "ws://", "ws://h:notaport", "ws://h:70000"])
def test_bad_urls_are_refused(url: str) -> None:
    with pytest.raises(CodecError, match="ws://HOST:PORT"):
        check_url(url)


def test_denoise_needs_a_model_with_the_switch() -> None:
    check_denoise("ssc16k", True)
    check_denoise(None, False)  # without --denoise nothing is checked
    with pytest.raises(CodecError, match="^model soundstream16k-lyra2x has no denoise switch"):
        check_denoise("soundstream16k-lyra2x", True)
    check_denoise("no-such-model", True)  # loading it says what is wrong
