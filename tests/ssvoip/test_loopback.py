"""`ssvoip loopback` never overwrites an earlier run's files without --force."""

from __future__ import annotations

from pathlib import Path

from ssvoip.loopback import _fresh_out


def test_an_earlier_run_is_kept(tmp_path: Path) -> None:
    out = tmp_path / "loopback"
    assert _fresh_out(out, force=False) == out  # nothing there yet
    out.mkdir()
    (out / "received.wav").write_bytes(b"earlier")
    assert _fresh_out(out, force=False) == tmp_path / "loopback-2"
    (tmp_path / "loopback-2").mkdir()
    (tmp_path / "loopback-2" / "stats.json").write_text("{}\n")
    assert _fresh_out(out, force=False) == tmp_path / "loopback-3"
    assert (out / "received.wav").read_bytes() == b"earlier"
    assert _fresh_out(out, force=True) == out and not (out / "received.wav").exists()
