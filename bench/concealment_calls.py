"""Live calls through loss, both concealers, redundancy off and on: `python -m bench.concealment_calls`.

Each row is one `ssvoip experiment` call (`call.experiment`: both ends in one process, the
userspace relay, WebRTC) through loss-5, loss-10, loss-20 (random loss) or burst-15
(Gilbert-Elliott bursts), with protection (redundant copies) off or on, the listener
concealing lost frames by repetition or by the latent predictor. Prints a markdown table
(and, with --json, one JSON line a run; with --repeat, a second table of each case's means); each run's CSV, plot, received WAV, summary and
playout trace (for `python -m bench.concealment_replay`) land in
OUT/<scenario>-<protect|bare>-<concealment>[-<run>]/. 16 calls of 30 s: about 15 minutes.

Two live calls never lose the same frames and the rate controller takes its own path in each,
so a single pair of rows ranks nothing: --repeat runs each case again (with the relay's next
seed: other loss draws; the two halves of an A/B pair share theirs), and replaying one call's
trace through both concealers is the deterministic comparison (docs/concealment.md).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import statistics
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path

from call.experiment import ExperimentConfig, ExperimentSummary, run_experiment
from codec.markdown_table import MarkdownTable
from receiver.concealment import CONCEALMENTS, ConcealmentName

SAMPLE = Path(__file__).resolve().parents[1] / "codec" / "samples" / "speech.wav"
SCENARIOS = ("loss-5", "loss-10", "loss-20", "burst-15")
PROTECTION = {"off": False, "on": True}
COLUMNS = ["scenario", "protection", "concealment", "PESQ-WB", "STOI", "audio played", "longest gap ms", "loss", "layers"]


@dataclass(frozen=True)
class Case:
    scenario: str
    protect: bool
    concealment: ConcealmentName
    run: int = 0  # 0, 1, ... with --repeat

    def directory(self, repeat: int) -> str:
        name = f"{self.scenario}-{'protect' if self.protect else 'bare'}-{self.concealment}"
        return name if repeat == 1 else f"{name}-{self.run}"


def cases(scenarios: Sequence[str], protections: Sequence[bool], concealers: Sequence[ConcealmentName], repeat: int = 1) -> list[Case]:
    """Each A/B pair (the concealers) back to back, so both halves see the machine in the same state."""
    return [Case(s, p, c, r) for s in scenarios for p in protections for r in range(repeat) for c in concealers]


def table(results: Iterable[tuple[Case, ExperimentSummary]], repeat: int = 1) -> str:
    columns = COLUMNS if repeat == 1 else [*COLUMNS[:3], "run", *COLUMNS[3:]]
    rows = []
    for case, s in results:
        head = [s.scenario, "on" if s.protect else "off", case.concealment, *([str(case.run + 1)] if repeat > 1 else [])]
        rows.append(
            [
                *head,
                f"{s.pesq_wb:.2f}",
                f"{s.stoi:.2f}",
                f"{100 * s.played_fraction:.1f} %",
                str(s.longest_gap_ms),
                f"{100 * s.loss_fraction:.1f} %",
                f"{s.layers_mean:.1f}",
            ]
        )
    return MarkdownTable(columns).render(rows)


def mean_table(results: Iterable[tuple[Case, ExperimentSummary]]) -> str:
    """With --repeat: each case's mean over its calls (the longest gap: the longest of any)."""
    by_case: dict[tuple[str, bool, str], list[ExperimentSummary]] = {}
    for case, s in results:
        by_case.setdefault((case.scenario, case.protect, case.concealment), []).append(s)
    rows = []
    for (scenario, protect, concealment), runs in by_case.items():

        def mean(key: str) -> float:
            return statistics.fmean(float(getattr(s, key)) for s in runs)

        rows.append(
            [
                scenario,
                "on" if protect else "off",
                concealment,
                str(len(runs)),
                f"{mean('pesq_wb'):.2f}",
                f"{mean('stoi'):.2f}",
                f"{100 * mean('played_fraction'):.1f} %",
                str(max(s.longest_gap_ms for s in runs)),
                f"{100 * mean('loss_fraction'):.1f} %",
                f"{mean('layers_mean'):.1f}",
            ]
        )
    return MarkdownTable([*COLUMNS[:3], "calls", *COLUMNS[3:]]).render(rows)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.concealment_calls", description=__doc__.split("\n")[0])
    parser.add_argument("--out", type=Path, default=Path("out/concealment-calls"))
    parser.add_argument("--only", nargs="+", choices=SCENARIOS, help="scenarios to run (default: all)")
    parser.add_argument("--protect", nargs="+", choices=list(PROTECTION), default=list(PROTECTION), help="redundancy off, on or both (default)")
    parser.add_argument("--concealment", nargs="+", choices=CONCEALMENTS, default=list(CONCEALMENTS), help="concealers to run (default: both)")
    parser.add_argument("--repeat", type=int, default=1, help="calls a case, run r with the relay's seed SEED + r (default 1)")
    parser.add_argument("--seed", type=int, default=0, help="the relay's random seed (loss draws) for the first run (default 0)")
    parser.add_argument("--duration", type=float, default=None, help="seconds a call (default: the scenario's, 30)")
    parser.add_argument("--json", action="store_true", help="also print one JSON line a run as it ends")
    args = parser.parse_args(argv)
    if args.repeat < 1:
        parser.error("--repeat must be at least 1")
    if args.duration is not None and args.duration <= 0:
        parser.error("--duration must be positive")
    results = []
    for case in cases(args.only or SCENARIOS, [PROTECTION[p] for p in args.protect], args.concealment, args.repeat):
        cfg = ExperimentConfig(
            scenario=case.scenario,
            transport="webrtc",
            input=SAMPLE,
            out=args.out / case.directory(args.repeat),
            protect=case.protect,
            concealment=case.concealment,
            duration_s=args.duration,
            seed=args.seed + case.run,
            dump_trace=True,
        )
        summary = asyncio.run(run_experiment(cfg))
        results.append((case, summary))
        if args.json:
            fields = summary.model_dump(mode="json", exclude={"relay"})
            print(json.dumps({"concealment": case.concealment, "seed": cfg.seed, **fields}), flush=True)
    print(table(results, args.repeat))
    if args.repeat > 1:
        print()
        print(mean_table(results))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
