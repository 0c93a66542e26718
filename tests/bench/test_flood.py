"""The flood benchmark, shortened: a listener process under 10x hostile traffic for 2 s."""

from __future__ import annotations

import sys

import pytest

from bench.flood import Junk, Wire, run

pytestmark = pytest.mark.skipif(not sys.platform.startswith("linux"), reason="reads /proc")


def test_junk_is_half_hostile_and_reproducible() -> None:
    wire = Wire("m", 16000, 20.0, 320, 46, 4)
    a, b = Junk(wire, seed=3), Junk(wire, seed=3)
    kinds = [a.media()[0] for _ in range(2 * len(Junk.MEDIA_KINDS))]
    assert set(kinds) == set(Junk.MEDIA_KINDS)
    assert [b.media()[0] for _ in kinds] == kinds
    assert sum(len(a.feedback()) != 28 for _ in range(10)) == 5


def test_a_short_flood_leaves_the_listener_answering_and_the_call_counted() -> None:
    result = run(seconds=2, rate_x=10, normal_s=1)
    for key in (
        "us_per_packet_normal",
        "us_per_packet_flood",
        "us_per_packet_growth",
        "rss_mib",
        "probes",
        "probe_ms_max",
        "media_per_s",
        "feedback_per_s",
        "call_malformed",
        "call_frames_played",
        "table",
    ):
        assert key in result, key
    assert len(result["us_per_packet_flood"]) == 2 and result["media_per_s"] > 100 and result["feedback_per_s"] > 20
    # A new caller during the flood hears "busy" within a second; after it, it is accepted.
    assert result["probes"] == 2 and result["probes_answered_within_1s"] == 2, result["probe_answers"]
    assert all(answer.startswith("reject (busy") for answer in result["probe_answers"])
    assert result["after_flood_probe"] == "accept"
    # The flooded call ended on the caller's bye, with the junk counted.
    assert result["call_ended_by"] == "the other side hung up (flood over)"
    assert result["call_malformed"] > 300
    assert "| flood |" in result["table"]
