"""The network experiments behind the README's table: `python -m bench.experiments`.

Runs each shipped scenario through `call.experiment` (one process, both ends, the
userspace relay), each beside the same scenario with adaptation or protection off, and
prints a markdown table (and, with --json, one JSON line per run). Each run's CSV, plot,
received WAV and summary land in OUT/<scenario>-<transport>-<variant>/. About 12 minutes.
"""

from __future__ import annotations

import argparse
import asyncio
import json
from pathlib import Path
from typing import Literal

from call.experiment import ExperimentConfig, ExperimentSummary, run_experiment

SAMPLE = Path(__file__).resolve().parents[1] / "codec" / "samples" / "speech.wav"
# (scenario, transport, adapt, protect)
MATRIX: list[tuple[str, Literal["websocket", "webrtc"], bool, bool]] = [
    ("clean", "webrtc", True, True),
    ("capacity-drop", "websocket", True, True),
    ("capacity-drop", "websocket", False, True),
    ("loss-10", "webrtc", True, True),
    ("loss-10", "webrtc", True, False),
    ("burst-15", "webrtc", True, True),
    ("burst-15", "webrtc", True, False),
    ("jitter-50", "webrtc", True, True),
    ("cap-24", "webrtc", True, True),
    ("cap-24", "webrtc", False, False),
    ("cap-24", "websocket", True, True),
    ("mobile", "webrtc", True, True),
    ("mobile", "webrtc", False, False),
]
COLUMNS = [
    "pesq_wb",
    "played_fraction",
    "longest_gap_ms",
    "loss_fraction",
    "sent_kbps_mean",
    "layers_mean",
    "time_to_under_capacity_s",
    "time_to_queue_under_150ms_s",
    "time_to_80pct_after_rise_s",
]


def main() -> None:
    parser = argparse.ArgumentParser(prog="python -m bench.experiments", description=__doc__)
    parser.add_argument("--out", type=Path, default=Path("out/experiments"))
    parser.add_argument("--only", nargs="*", help="scenario names to run (default: all)")
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args()
    rows = []
    for scenario, transport, adapt, protect in MATRIX:
        if args.only and scenario not in args.only:
            continue
        variant = ("adapt" if adapt else "fixed") + ("+protect" if protect else "")
        out = args.out / f"{scenario}-{transport}-{variant.replace('+', '-')}"
        cfg = ExperimentConfig(scenario=scenario, transport=transport, input=SAMPLE, out=out, adapt=adapt, protect=protect)
        summary = asyncio.run(run_experiment(cfg))
        rows.append((variant, summary))
        if args.json:
            print(json.dumps({"variant": variant, **summary.model_dump(mode="json", exclude={"relay"})}), flush=True)
    print(
        "| scenario | transport | rate control | PESQ-WB | audio played | longest gap ms | loss | m2e p50 ms | sent kbps | layers"
        " | under cap s | queue <150 ms s | 80 % after rise s | fell back |"
    )
    print("|---|---|---|---|---|---|---|---|---|---|---|---|---|---|")
    for variant, r in rows:

        def f(key: str, fmt: str = "{}") -> str:
            value = getattr(r, key)
            return "-" if value is None else fmt.format(value)

        print(
            f"| {r.scenario} | {r.transport} | {variant} | {f('pesq_wb', '{:.2f}')} | {100 * r.played_fraction:.1f} % | "
            f"{f('longest_gap_ms')} | {100 * r.loss_fraction:.1f} % | {r.mouth_to_ear_ms.p50} | "
            f"{f('sent_kbps_mean')} | {f('layers_mean')} | {f('time_to_under_capacity_s')} | {f('time_to_queue_under_150ms_s')} | "
            f"{f('time_to_80pct_after_rise_s')} | {_fallback(r)} |"
        )


def _fallback(summary: ExperimentSummary) -> str:
    """Over WebRTC, the share of media packets the call sent on the websocket after the data channel closed."""
    paths = summary.media_packets_by_path
    if summary.transport != "webrtc" or not paths.get("websocket"):
        return "-"
    return f"{100 * paths['websocket'] / max(1, sum(paths.values())):.0f} % of packets"


if __name__ == "__main__":
    main()
