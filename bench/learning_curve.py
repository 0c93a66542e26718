"""Markdown table of training runs' validation curves.

`python -m bench.learning_curve LOG.csv [LOG.csv ...] [--every N]`

Reads the trainer's log.csv files and prints, for every validated step (or every N-th, and
always a run's last), the run, wall-clock hours, training mel loss, validation PESQ-WB / log-mel
distance at 3, 6 and 12 kbps and, where the log has them, the latent's relative error after 1
and 12 RVQ layers (the layer-collapse check). Several logs are read as one lineage, each run
continuing the one before (`init_from`): hours add up across them, so the table says what each
further hour of training bought.
"""

from __future__ import annotations

import argparse
import csv
import sys
from pathlib import Path

from codec.command_line import run_main
from codec.errors import CodecError
from codec.markdown_table import MarkdownTable

TABLE = MarkdownTable(
    [
        "run",
        "step",
        "hours",
        "train mel",
        "val PESQ 3k",
        "val PESQ 6k",
        "val PESQ 12k",
        "val mel 3k",
        "val mel 6k",
        "val mel 12k",
        "latent err 1",
        "latent err 12",
    ]
)


def _cell(row: dict[str, str], key: str, digits: int) -> str:
    return f"{float(row[key]):.{digits}f}" if row.get(key) else "-"


def curve(paths: list[Path], every: int = 1) -> str:
    lines = [TABLE.head()]
    start_hours = 0.0
    for path in paths:
        rows = [r for r in csv.DictReader(path.open()) if r.get("val_mel_6k")]
        run = path.stem.removesuffix("-run-log").removesuffix("log").rstrip("-_.") or path.parent.name
        offset = last_seconds = 0.0
        for i, r in enumerate(rows):
            seconds = float(r["seconds"])
            if seconds < last_seconds:  # a resumed run restarts its clock
                offset += last_seconds
            last_seconds = seconds
            if i % every and i != len(rows) - 1:
                continue
            cells = [_cell(r, k, 2) for k in ("val_pesq_3k", "val_pesq_6k", "val_pesq_12k")]
            cells += [_cell(r, k, 3) for k in ("val_mel_3k", "val_mel_6k", "val_mel_12k", "val_latent_err_1", "val_latent_err_12")]
            hours = start_hours + (offset + seconds) / 3600
            lines.append(TABLE.row([run, r["step"], f"{hours:.2f}", _cell(r, "mel", 3), *cells]))
        start_hours += (offset + last_seconds) / 3600
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.learning_curve", description=__doc__.split("\n\n")[0])
    parser.add_argument("logs", nargs="+", type=Path, help="log.csv files, oldest run first")
    parser.add_argument("--every", type=int, default=1, help="print every N-th validation (and each run's last)")
    args = parser.parse_args(argv)
    return run_main(lambda: _print_curve(args.logs, args.every))


def _print_curve(logs: list[Path], every: int) -> None:
    missing = [str(p) for p in logs if not p.is_file()]
    if missing:
        raise CodecError(f"no such file: {', '.join(missing)}")
    if every < 1:
        raise CodecError("--every must be >= 1")
    print(curve(logs, every))


if __name__ == "__main__":
    sys.exit(main())
