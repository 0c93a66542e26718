"""The command line every tool of the project shares: its exit contract and its codec options.

Bad input is one `error: ...` line on stderr and exit code 2, never a traceback; Ctrl-C ends
a tool with exit code 130 (128 + SIGINT). `run_main` keeps that contract around a tool's body.
The options several tools take (`--engine`, `--kbps`/`--layers`, `--model`, `--force`,
`--quiet`) are argparse parents, so each is spelled, defaulted and checked in one place.
Nothing here imports torch: `--help` and a bad argument answer at once.
"""

from __future__ import annotations

import argparse
import math
import sys
from collections.abc import Callable
from typing import TYPE_CHECKING

from codec.engine import DEFAULT_ENGINE, ENGINES
from codec.errors import CodecError

if TYPE_CHECKING:
    from codec.config import AnyCodecConfig

EXIT_BAD_INPUT = 2
EXIT_INTERRUPTED = 130
DEFAULT_MODEL_NAME = "soundstream16k-lyra2x"  # codec.weights.DEFAULT_MODEL, without importing torch
DEFAULT_KBPS = 6.0


def run_main(body: Callable[[], int | None], *errors: type[Exception], interrupted: str | None = None) -> int:
    """The exit code of `body()` (None: 0); a CodecError, or one of `errors`, is reported as
    one `error:` line and exit code 2; Ctrl-C is exit code 130, after `interrupted` if given."""
    reported: tuple[type[Exception], ...] = (CodecError, *errors)
    try:
        code = body()
    except reported as exc:
        print(f"error: {exc}", file=sys.stderr)
        return EXIT_BAD_INPUT
    except KeyboardInterrupt:
        if interrupted is not None:
            print(interrupted, file=sys.stderr)
        return EXIT_INTERRUPTED
    return 0 if code is None else code


def _parent() -> argparse.ArgumentParser:
    return argparse.ArgumentParser(add_help=False)


def engine_options(default: str = DEFAULT_ENGINE, help: str | None = None) -> argparse.ArgumentParser:
    p = _parent()
    p.add_argument("--engine", default=default, choices=list(ENGINES), help=help or f"codec engine (default {default})")
    return p


def rate_options() -> argparse.ArgumentParser:
    """`--kbps` or `--layers` (one of them): how many RVQ stages a frame sends; see `check_rate`, `layers_for`."""
    p = _parent()
    group = p.add_mutually_exclusive_group()
    group.add_argument("--kbps", type=float, default=DEFAULT_KBPS, help=f"payload bitrate; picks the most layers that fit (default {DEFAULT_KBPS:g})")
    group.add_argument("--layers", type=int, help="number of RVQ stages (`python -m codec models` gives each model's kbps a stage)")
    return p


def model_option(default: str = DEFAULT_MODEL_NAME) -> argparse.ArgumentParser:
    p = _parent()
    p.add_argument("--model", help=f"a shipped model's name (`python -m codec models`; default: {default})")
    return p


def force_option(what: str) -> argparse.ArgumentParser:
    """`--force`: overwrite `what` (outputs are never overwritten without it)."""
    p = _parent()
    p.add_argument("--force", action="store_true", help=f"overwrite {what}")
    return p


def quiet_option() -> argparse.ArgumentParser:
    p = _parent()
    p.add_argument("--quiet", action="store_true", help="no progress bars, status or summary lines (results and errors still print)")
    return p


def check_rate(kbps: float, layers: int | None) -> None:
    """Before a model loads: `--kbps` must be a positive number (`--layers` is checked against the model)."""
    if layers is None and not (math.isfinite(kbps) and kbps > 0):
        raise CodecError(f"--kbps must be a positive number, not {kbps:g}")


def layers_for(kbps: float, layers: int | None, cfg: AnyCodecConfig) -> int:
    """The RVQ stages a frame sends: `--layers` (in 1..the model's stages), else the most that fit in `--kbps`."""
    check_rate(kbps, layers)
    if layers is None:
        return cfg.layers_for_kbps(kbps)
    if not 1 <= layers <= cfg.n_quantizers:
        raise CodecError(f"--layers must be in 1..{cfg.n_quantizers}")
    return layers
