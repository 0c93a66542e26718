"""The command-line contract every tool keeps (codec/command_line.py): bad input is one
`error:` line and exit code 2, Ctrl-C exit code 130; the shared options parse and check alike."""

from __future__ import annotations

import argparse
from dataclasses import dataclass

import pytest

from codec.command_line import (
    EXIT_BAD_INPUT,
    EXIT_INTERRUPTED,
    check_rate,
    engine_options,
    force_option,
    layers_for,
    model_option,
    quiet_option,
    rate_options,
    run_main,
)
from codec.engine import DEFAULT_ENGINE
from codec.errors import BitstreamError, CodecError


class _Refused(Exception):
    pass


def _raise(exc: BaseException):
    def body() -> None:
        raise exc

    return body


def test_the_body_gives_the_exit_code() -> None:
    assert run_main(lambda: None) == 0
    assert run_main(lambda: 3) == 3


@pytest.mark.parametrize("exc", [CodecError("no such file: a.wav"), BitstreamError("no such file: a.wav"), _Refused("no such file: a.wav")])
def test_bad_input_is_one_error_line_and_exit_2(exc: Exception, capsys: pytest.CaptureFixture[str]) -> None:
    assert run_main(_raise(exc), _Refused) == EXIT_BAD_INPUT == 2
    captured = capsys.readouterr()
    assert captured.err == "error: no such file: a.wav\n" and captured.out == ""


def test_other_exceptions_are_bugs_and_propagate() -> None:
    with pytest.raises(_Refused):
        run_main(_raise(_Refused("x")))


def test_ctrl_c_is_exit_130(capsys: pytest.CaptureFixture[str]) -> None:
    assert run_main(_raise(KeyboardInterrupt())) == EXIT_INTERRUPTED == 130
    assert capsys.readouterr().err == ""
    assert run_main(_raise(KeyboardInterrupt()), interrupted="interrupted") == 130
    assert capsys.readouterr().err == "interrupted\n"


def _parser() -> argparse.ArgumentParser:
    return argparse.ArgumentParser(parents=[rate_options(), engine_options(), model_option(), force_option("x"), quiet_option()])


def test_shared_options_defaults() -> None:
    args = _parser().parse_args([])
    assert (args.kbps, args.layers, args.engine, args.model, args.force, args.quiet) == (6.0, None, DEFAULT_ENGINE, None, False, False)


def test_kbps_and_layers_exclude_each_other(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as info:
        _parser().parse_args(["--kbps", "3", "--layers", "2"])
    assert info.value.code == 2 and "not allowed with argument" in capsys.readouterr().err


def test_an_unknown_engine_is_refused() -> None:
    with pytest.raises(SystemExit):
        _parser().parse_args(["--engine", "tflite"])


@dataclass
class _Config:
    n_quantizers: int = 12

    def layers_for_kbps(self, kbps: float) -> int:
        return max(1, min(self.n_quantizers, int(kbps)))


@pytest.mark.parametrize("kbps", [0.0, -1.0, float("nan"), float("inf")])
def test_kbps_must_be_a_positive_number(kbps: float) -> None:
    with pytest.raises(CodecError, match="--kbps must be a positive number"):
        check_rate(kbps, None)
    with pytest.raises(CodecError, match="--kbps"):
        layers_for(kbps, None, _Config())
    check_rate(kbps, 3)  # --layers given: the default --kbps is not the user's


def test_layers_come_from_kbps_or_from_the_model_s_range() -> None:
    assert layers_for(6.0, None, _Config()) == 6
    assert layers_for(6.0, 12, _Config()) == 12
    for bad in (0, 13):
        with pytest.raises(CodecError, match=r"--layers must be in 1\.\.12"):
            layers_for(6.0, bad, _Config())
