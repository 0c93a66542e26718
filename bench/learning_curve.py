"""Markdown table of a training run's validation curve: `python -m bench.learning_curve LOG.csv`.

Reads the trainer's log.csv and prints, for every validated step, wall-clock hours, training
losses, validation PESQ-WB / log-mel distance at 3, 6 and 12 kbps and, where the log has them,
the latent's relative error after 1 and 12 RVQ layers (the layer-collapse check).
"""

from __future__ import annotations

import csv
import sys
from pathlib import Path


def curve(path: Path) -> str:
    rows = [r for r in csv.DictReader(path.open()) if r.get("val_mel_6k")]
    lines = [
        "| step | hours | train mel | val PESQ 3k | val PESQ 6k | val PESQ 12k | val mel 3k | val mel 6k | val mel 12k | latent err 1 | latent err 12 |",
        "|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    offset = 0.0
    last_seconds = 0.0
    for r in rows:
        seconds = float(r["seconds"])
        if seconds < last_seconds:  # a resumed run restarts its clock
            offset += last_seconds
        last_seconds = seconds
        pesq = [f"{float(r[k]):.2f}" if r.get(k) else "-" for k in ("val_pesq_3k", "val_pesq_6k", "val_pesq_12k")]
        rest = [
            f"{float(r[k]):.3f}" if r.get(k) else "-"
            for k in ("val_mel_3k", "val_mel_6k", "val_mel_12k", "val_latent_err_1", "val_latent_err_12")
        ]
        lines.append(f"| {r['step']} | {(offset + seconds) / 3600:.2f} | {float(r['mel']):.3f} | {' | '.join(pesq + rest)} |")
    return "\n".join(lines)


if __name__ == "__main__":
    if len(sys.argv) != 2 or not Path(sys.argv[1]).is_file():
        print("usage: python -m bench.learning_curve LOG.csv", file=sys.stderr)
        sys.exit(2)
    print(curve(Path(sys.argv[1])))
