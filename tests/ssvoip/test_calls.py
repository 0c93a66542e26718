"""`ssvoip listen` / `ssvoip call`: bad input is one `error:` line and exit 2, before any
model loads or call starts; safe defaults for listening."""

from __future__ import annotations

import argparse
from pathlib import Path

import pytest

from ssvoip.calls import _check, call_parser, listen_parser, main


def _error(capsys: pytest.CaptureFixture, command: str, *argv: str) -> str:
    assert main(command, list(argv)) == 2
    err = capsys.readouterr().err
    assert "Traceback" not in err and len(err.strip().splitlines()) == 1 and err.startswith("error: ")
    return err


@pytest.mark.parametrize(
    "argv, says",
    [
        (["--port", "70000"], "--port"),
        (["--output", "nodir/x.wav"], "does not exist"),
        (["--stats-json", "nodir/s.json", "--token", "t"], "does not exist"),
        (["--token", "x" * 257], "at most 256"),
        (["--host", "0.0.0.0"], "without a token"),
        (["--kbps", "nan"], "--kbps"),
        (["--denoise", "--model", "soundstream16k-lyra2x"], "model soundstream16k-lyra2x has no denoise switch"),
    ],
)
def test_listen_refuses_with_one_error_line(capsys: pytest.CaptureFixture, argv: list[str], says: str) -> None:
    assert says in _error(capsys, "listen", *argv)


@pytest.mark.parametrize(
    "argv, says",
    [
        (["notaurl"], "ws://HOST:PORT"),
        (["ws://127.0.0.1:99999"], "ws://HOST:PORT"),
        (["ws://127.0.0.1:1", "--kbps", "0"], "--kbps"),
        (["ws://127.0.0.1:1", "--kbps", "inf"], "--kbps"),
        (["ws://127.0.0.1:1", "--kbps", "-3"], "--kbps"),
        (["ws://127.0.0.1:1", "--output", "nodir/x.wav"], "does not exist"),
        (["ws://127.0.0.1:1", "--stats-json", "nodir/s.json"], "does not exist"),
        (["ws://127.0.0.1:1", "--token", "x" * 300], "at most 256"),
        (["ws://127.0.0.1:1", "--denoise", "--model", "soundstream16k-lyra2x"], "model soundstream16k-lyra2x has no denoise switch"),
    ],
)
def test_call_refuses_with_one_error_line(capsys: pytest.CaptureFixture, argv: list[str], says: str) -> None:
    assert says in _error(capsys, "call", *argv)


def _listen_args(*argv: str) -> argparse.Namespace:
    args = listen_parser().parse_args(list(argv))
    _check("listen", args)
    return args


def test_listening_without_a_token_stays_on_this_machine(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("SSVOIP_TOKEN", raising=False)
    assert _listen_args().host == "127.0.0.1"
    assert _listen_args("--host", "::1").host == "::1"
    assert _listen_args("--host", "0.0.0.0", "--allow-anyone").host == "0.0.0.0"  # asked for explicitly
    assert _listen_args("--token", "s3cret").host == "0.0.0.0"


def test_the_token_comes_from_a_file_or_the_environment(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("SSVOIP_TOKEN", "from-env")
    args = _listen_args()
    assert args.token == "from-env" and args.host == "0.0.0.0"
    secret = tmp_path / "token"
    secret.write_text("from-file\n")
    assert _listen_args("--token-file", str(secret)).token == "from-file"
    args = call_parser().parse_args(["ws://h:1", "--token-file", str(secret)])
    _check("call", args)
    assert args.token == "from-file"


@pytest.mark.parametrize(
    "command, argv, says",
    [
        ("call", ["ws://127.0.0.1:1", "--pin", "AB" * 32], "wss://"),
        ("call", ["wss://127.0.0.1:1", "--pin", "nothex"], "64 hex"),
        ("call", ["wss://127.0.0.1:1", "--ca", "nodir/ca.pem"], "CA file"),
        ("listen", ["--token", "t", "--cert", "c.pem"], "go together"),
        ("listen", ["--token", "t", "--cert", "nodir/c.pem", "--key", "nodir/k.pem"], "cannot load"),
    ],
)
def test_tls_options_refuse_with_one_error_line(capsys: pytest.CaptureFixture, command: str, argv: list[str], says: str) -> None:
    assert says in _error(capsys, command, *argv)


def test_denoise_parses_for_both_commands_and_passes_the_check_with_a_switch() -> None:
    assert not call_parser().parse_args(["ws://h:1"]).denoise and not listen_parser().parse_args([]).denoise
    args = call_parser().parse_args(["ws://h:1", "--denoise", "--model", "ssc16k"])
    _check("call", args)
    assert args.denoise
    assert _listen_args("--denoise", "--model", "ssc16k").denoise
