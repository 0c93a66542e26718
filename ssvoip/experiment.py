"""`ssvoip experiment SCENARIO`: a call through a shipped (or given) network scenario.

    ssvoip experiment capacity-drop [--transport websocket|webrtc] [--input FILE] [--out DIR]
                      [--kbps 16] [--no-adapt] [--no-protect] [--duration S] [--force] [--dump-trace]

Writes timeline.csv, timeline.png, received.wav and summary.json (and with --dump-trace
playout_trace.npz: receiver.playout_trace) to DIR (default
out/experiments/SCENARIO-TRANSPORT[-noadapt][-noprotect]) and prints the summary as one JSON
line. `python -m netsim scenarios` lists the scenarios. See call/experiment.py.
"""

from __future__ import annotations

import argparse
import asyncio
import json
from pathlib import Path

from codec.command_line import force_option, model_option, run_main
from codec.errors import CodecError
from receiver.concealment import concealment_option

SAMPLE = Path(__file__).resolve().parents[1] / "codec" / "samples" / "speech.wav"


def main(argv: list[str]) -> int:
    p = argparse.ArgumentParser(
        prog="ssvoip experiment",
        description="A call through a network scenario, measured.",
        parents=[model_option(), force_option("an existing output folder"), concealment_option()],
    )
    p.add_argument("scenario", help="a shipped scenario name or a scenario TOML file")
    p.add_argument("--transport", default="websocket", choices=["websocket", "webrtc"])
    p.add_argument("--input", type=Path, default=SAMPLE, help="speech file (looped to the scenario's length)")
    p.add_argument("--out", type=Path)
    p.add_argument("--kbps", type=float, default=16.0, help="the bitrate ceiling (default 16: every stage of the default model)")
    p.add_argument("--no-adapt", action="store_true", help="fixed layer count (no bandwidth estimate)")
    p.add_argument("--no-protect", action="store_true", help="no redundancy under loss")
    p.add_argument("--duration", type=float, help="seconds (default: the scenario's)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--dump-trace", action="store_true", help="also write playout_trace.npz: every playout decision, for bench.concealment_replay")
    args = p.parse_args(argv)
    from netsim.scenario import ScenarioError

    return run_main(lambda: _run(args), ScenarioError)


def _run(args: argparse.Namespace) -> None:
    from pydantic import ValidationError

    from call.experiment import ExperimentConfig, run_experiment
    from netsim.scenario import load_scenario

    try:
        scenario = load_scenario(args.scenario)
        out = args.out or Path("out/experiments") / (
            f"{scenario.name}-{args.transport}" + ("-noadapt" if args.no_adapt else "") + ("-noprotect" if args.no_protect else "")
        )
        if out.exists() and any(out.iterdir()) and not args.force:
            raise CodecError(f"{out}: already exists (pass --force to overwrite)")
        if not args.input.is_file():
            raise CodecError(f"{args.input}: no such file")
        cfg = ExperimentConfig(
            scenario=args.scenario,
            transport=args.transport,
            input=args.input,
            out=out,
            kbps=args.kbps,
            adapt=not args.no_adapt,
            protect=not args.no_protect,
            duration_s=args.duration,
            seed=args.seed,
            model=args.model,
            concealment=args.concealment,
            dump_trace=args.dump_trace,
        )
        summary = asyncio.run(run_experiment(cfg))
    except ValidationError as exc:
        raise CodecError(f"{exc.errors()[0]['loc']}: {exc.errors()[0]['msg']}") from None
    print(json.dumps(summary.model_dump(mode="json")))
