"""Command-line options and checks shared by `ssvoip listen/call`, `python -m receiver` and
`python -m transmitter`: bad input is one `error:` line (a CodecError) before anything starts,
never a traceback after a call; outputs are never overwritten without --force. The codec's
options (`--engine`, `--kbps`, ...) are in codec/command_line.py."""

from __future__ import annotations

import argparse
import ipaddress
import json
import os
from collections.abc import Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any
from urllib.parse import urlsplit

from codec.errors import CodecError

if TYPE_CHECKING:
    import ssl

MAX_TOKEN_CHARS = 256  # protocol.messages.Hello.token: a longer one no caller could send
TOKEN_ENV = "SSVOIP_TOKEN"  # the token from the environment (argv is visible in `ps`)


def token_options() -> argparse.ArgumentParser:
    """`--token` / `--token-file` (an argparse parent); `read_token` resolves them."""
    p = argparse.ArgumentParser(add_help=False)
    p.add_argument("--token", default="", help=f"the call's shared secret (visible in `ps`: prefer --token-file or ${TOKEN_ENV})")
    p.add_argument("--token-file", type=Path, help="read the token from this file")
    return p


def read_token(token: str, token_file: Path | None, env: Mapping[str, str] = os.environ) -> str:
    """The shared secret: --token-file, else --token, else $SSVOIP_TOKEN; "" for none."""
    if token and token_file is not None:
        raise CodecError("give --token or --token-file, not both")
    if token_file is not None:
        try:
            token = token_file.read_text(encoding="utf-8").strip()
        except (OSError, UnicodeDecodeError) as exc:
            raise CodecError(f"cannot read the token file {token_file}: {getattr(exc, 'strerror', None) or exc}") from None
        if not token:
            raise CodecError(f"the token file {token_file} is empty")
    elif not token:
        token = env.get(TOKEN_ENV, "")
    if len(token) > MAX_TOKEN_CHARS:
        raise CodecError(f"the token has {len(token)} characters; at most {MAX_TOKEN_CHARS} fit in a hello")
    return token


def listener_tls_options() -> argparse.ArgumentParser:
    """`--cert` / `--key` (an argparse parent); `listener_tls` loads them."""
    p = argparse.ArgumentParser(add_help=False)
    p.add_argument("--cert", type=Path, help="TLS certificate (PEM): serve wss:// (with --key)")
    p.add_argument("--key", type=Path, help="the certificate's private key (PEM)")
    return p


def caller_tls_options() -> argparse.ArgumentParser:
    """`--ca` or `--pin` (an argparse parent); `caller_tls` makes the context."""
    p = argparse.ArgumentParser(add_help=False)
    trust = p.add_mutually_exclusive_group()
    trust.add_argument("--ca", type=Path, help="wss: trust the listener's certificate if this CA (PEM) signed it (default: the system's CAs)")
    trust.add_argument("--pin", metavar="SHA256", help="wss: trust exactly the certificate with this SHA-256 fingerprint (the listener prints it)")
    return p


def listener_tls(cert: Path | None, key: Path | None) -> tuple[ssl.SSLContext | None, str | None]:
    """The listener's TLS context and its certificate's SHA-256 fingerprint; (None, None) for plain ws://."""
    if (cert is None) != (key is None):
        raise CodecError("--cert and --key go together")
    if cert is None or key is None:
        return None, None
    from transport.tls import server_context

    try:
        return server_context(cert, key)
    except ValueError as exc:
        raise CodecError(str(exc)) from None


def caller_tls(url: str, ca: Path | None, pin: str | None) -> ssl.SSLContext | None:
    """The caller's TLS context for a wss:// URL (None for ws://)."""
    secure = url.startswith("wss://")
    if (ca is not None or pin is not None) and not secure:
        raise CodecError("--ca and --pin are for wss:// URLs")
    if not secure:
        return None
    from transport.tls import client_context

    try:
        return client_context(ca, pin)
    except ValueError as exc:
        raise CodecError(str(exc)) from None


def denoise_option(key: bool = False) -> argparse.ArgumentParser:
    """`--denoise` (an argparse parent): the send path's denoise switch, on from the start;
    `key`: the command's calls take the `d` key to switch it (call.console)."""
    p = argparse.ArgumentParser(add_help=False)
    during = "; the d key switches it during a call" if key else ""
    p.add_argument("--denoise", action="store_true", help=f"remove background noise while encoding (a model with the switch only{during})")
    return p


def check_denoise(model: str | None, denoise: bool) -> None:
    """`--denoise` needs a model with a denoise switch: refused from the model's description,
    before its weights load or a socket opens. An unknown model passes here (loading it says so)."""
    if not denoise:
        return
    from codec.errors import WeightsError
    from codec.weights import DEFAULT_MODEL, describe_model

    name = model or DEFAULT_MODEL
    try:
        config = describe_model(name).get("config", {})
    except WeightsError:
        return
    if not config.get("denoise_conditioning", False):
        raise CodecError(f"model {name} has no denoise switch (choose one with --model; `python -m codec models`)")


def check_port(port: int) -> None:
    if not 0 <= port <= 65535:
        raise CodecError(f"--port must be in 0..65535, not {port}")


def check_writable(path: Path, option: str) -> None:
    """The file's folder must exist now: finding out after the call loses what it made."""
    folder = path.parent if str(path.parent) else Path(".")
    if not folder.is_dir():
        raise CodecError(f"{option} {path}: the folder {folder} does not exist")
    if path.is_dir():
        raise CodecError(f"{option} {path} is a folder")


def check_url(url: str) -> None:
    parts = urlsplit(url)
    try:
        port = parts.port
    except ValueError:
        port = -1
    if parts.scheme not in ("ws", "wss") or not parts.hostname or port == -1:
        raise CodecError(f"expected ws://HOST:PORT or wss://HOST:PORT, not {url!r}")


def is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def call_output(path: Path, call: int, force: bool) -> Path:
    """Where call number `call` (from 1) is recorded: the path, then path-2, path-3, ...;
    without `force`, a name that exists is passed over (never overwritten)."""
    n = call
    while True:
        out = path if n == 1 else path.with_name(f"{path.stem}-{n}{path.suffix}")
        if force or not out.exists():
            return out
        n += 1


def append_json_line(path: Path, record: dict[str, Any]) -> None:
    """One JSON line per call: every call's statistics are kept."""
    with path.open("a", encoding="utf-8") as f:
        f.write(json.dumps(record) + "\n")
