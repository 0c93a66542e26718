"""`ssvoip listen` and `ssvoip call`: full-duplex calls between two machines.

    ssvoip listen [--port 8765] [--token T] [--input mic|FILE|tone] [--output speaker|FILE] [--denoise]
    ssvoip call ws://HOST:8765 [--token T] [--transport webrtc|websocket] [--input ...] [--output ...] [--denoise]

Each side sends its input and plays the other's. Media goes over a WebRTC data channel
(default) or the websocket the listener serves, which also carries signaling and control.
Keys during a call: m = mute/unmute, d = denoise on/off (`--denoise`: on from the start; only
for a model with the switch), q = hang up. The listener takes the next call after
one ends (`--once`: exit instead). With `--input FILE` a side sends the file once and the
call ends when both files have played; `--stats-json` writes the call's statistics.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import sys
from pathlib import Path
from typing import Any

from codec.command_line import check_rate, engine_options, force_option, layers_for, model_option, quiet_option, rate_options, run_main
from codec.errors import CodecError
from call.options import (
    TOKEN_ENV,
    append_json_line,
    call_output,
    caller_tls,
    caller_tls_options,
    check_denoise,
    check_port,
    check_url,
    check_writable,
    denoise_option,
    is_loopback,
    listener_tls,
    listener_tls_options,
    read_token,
    token_options,
)
from protocol.telemetry import CallerSummary, CallSummary
from receiver.concealment import concealment_option
from transport.base import WEBRTC_OPEN_TIMEOUT_S

DEFAULT_PORT = 8765


def _shared() -> list[argparse.ArgumentParser]:
    """The options `python -m transmitter` and `python -m receiver` take too, as argparse parents."""
    return [token_options(), rate_options(), engine_options(), concealment_option(), model_option(), force_option("existing output files"), quiet_option()]


def _common(p: argparse.ArgumentParser) -> None:
    p.add_argument("--input", default="mic", help="'mic' (default), an audio file, or 'tone'")
    p.add_argument("--output", default="speaker", help="'speaker' (default) or a WAV file")
    p.add_argument("--input-device", help="microphone name or index (python -m transmitter --list-devices)")
    p.add_argument("--output-device", help="speaker name or index")
    p.add_argument("--no-adapt", action="store_true", help="keep the layer count fixed (no bandwidth estimate)")
    p.add_argument("--no-protect", action="store_true", help="no redundancy (earlier frames' coarse layers) under loss")
    p.add_argument("--ice-server", action="append", default=[], help="STUN/TURN URL (repeatable; none by default)")
    p.add_argument("--stats-json", type=Path, help="write each call's statistics here")
    from transmitter.frontend import add_arguments as add_front_end_arguments

    add_front_end_arguments(p)


def listen_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="ssvoip listen", description="Wait for calls (full duplex).", parents=[*_shared(), listener_tls_options(), denoise_option(key=True)]
    )
    p.add_argument("--host", help="address to listen on (default: all interfaces with a token, 127.0.0.1 without one)")
    p.add_argument("--port", type=int, default=DEFAULT_PORT)
    p.add_argument("--allow-anyone", action="store_true", help="listen beyond this machine without a token: any caller that reaches the port is answered")
    p.add_argument("--once", action="store_true", help="exit after the first call")
    p.add_argument("--no-webrtc", action="store_true", help="answer offers empty: media over the websocket")
    p.add_argument("--web", action="store_true", help="also serve the browser page on this port (HTTPS with --cert): docs/browser.md")
    _common(p)
    return p


def call_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="ssvoip call", description="Call a listener (full duplex).", parents=[*_shared(), caller_tls_options(), denoise_option(key=True)]
    )
    p.add_argument("url", help="ws://HOST:PORT or wss://HOST:PORT of the listener")
    p.add_argument("--transport", default="webrtc", choices=["webrtc", "websocket"])
    p.add_argument("--reconnect-s", type=float, default=10.0, help="after a dropped link, redial for this long (0: never)")
    p.add_argument(
        "--webrtc-timeout",
        type=float,
        default=WEBRTC_OPEN_TIMEOUT_S,
        metavar="S",
        help=f"how long the data channel may take to open before media falls back to the websocket (default {WEBRTC_OPEN_TIMEOUT_S:g} s; "
        "a lossy path can need retransmitted handshakes)",
    )
    p.add_argument("--inject-loss", type=float, default=0.0, metavar="P", help="drop this fraction of our outgoing WebRTC datagrams (tests and experiments)")
    _common(p)
    return p


class _Audio:
    """Sources and sinks from the command line, checked before any call arrives."""

    def __init__(self, args: argparse.Namespace, cfg) -> None:
        from transmitter.sources import FileSource, ToneSource

        self.args, self.cfg = args, cfg
        if args.input not in ("mic", "tone"):
            FileSource(Path(args.input), cfg.sample_rate, cfg.hop)  # fail now on unreadable audio
        if args.output != "speaker":
            out = Path(args.output)
            if out.exists() and not args.force:
                raise CodecError(f"{out}: already exists (pass --force to overwrite)")
            if args.input not in ("mic", "tone") and out.resolve() == Path(args.input).resolve():
                raise CodecError("--output must not be the --input file")
        self._ToneSource = ToneSource
        self._calls = 0
        from transmitter.frontend import CallFrontEnds, config_from_args

        # Echo cancellation etc. for a microphone and a speaker (one front end per call).
        self.front = CallFrontEnds(config_from_args(args), cfg.sample_rate, cfg.hop, say=lambda why: print(why, file=sys.stderr))

    def source(self):
        from transmitter.sources import FileSource, MicSource

        cfg, args = self.cfg, self.args
        if args.input == "mic":
            return self.front.source(MicSource(cfg.sample_rate, cfg.hop, _device(args.input_device)))
        if args.input == "tone":
            return self._ToneSource(cfg.sample_rate, cfg.hop, seconds=3600)
        return FileSource(Path(args.input), cfg.sample_rate, cfg.hop)

    def sink(self):
        from receiver.sinks import SpeakerSink, WavSink

        self._calls += 1
        if self.args.output == "speaker":
            return self.front.sink(SpeakerSink(self.cfg.sample_rate, self.cfg.hop, _device(self.args.output_device)))
        # The listener's next call: out-2.wav, out-3.wav, ... (a name that exists is passed over
        # without --force). A caller's file is written aside and replaces the output only once
        # the call connected: a failed call with --force leaves an existing file as it was.
        out = call_output(Path(self.args.output), self._calls, self.args.force) if self._calls > 1 else Path(self.args.output)
        return WavSink(out, self.cfg.sample_rate, atomic=self._calls == 1)


def _device(text: str | None) -> str | int | None:
    return int(text) if text and text.isdigit() else text


def _check(command: str, args: argparse.Namespace) -> None:
    """Everything the command line can get wrong, refused before a model loads or a call starts."""
    check_rate(args.kbps, args.layers)
    check_denoise(args.model, args.denoise)
    args.token = read_token(args.token, args.token_file)
    if args.output != "speaker":
        check_writable(Path(args.output), "--output")
    if args.stats_json is not None:
        check_writable(args.stats_json, "--stats-json")
    if command == "call":
        check_url(args.url)
        args.ssl_context = caller_tls(args.url, args.ca, args.pin)
        return
    args.ssl_context, args.fingerprint = listener_tls(args.cert, args.key)
    check_port(args.port)
    if args.host is None:
        # Safe by default: without a token, only this machine can call (a token printed at
        # start would be one more secret to pass on; loopback needs none and exposes nothing).
        args.host = "0.0.0.0" if args.token else "127.0.0.1"
    elif not args.token and not is_loopback(args.host) and not args.allow_anyone:
        raise CodecError(
            f"listening on {args.host} without a token would answer anyone who reaches the port: give --token-file (or ${TOKEN_ENV}), or pass --allow-anyone"
        )


def _load(args: argparse.Namespace):
    import torch

    from codec.weights import load_model

    torch.set_num_threads(1)
    model, model_id = load_model(name=args.model)
    return model, model_id, layers_for(args.kbps, args.layers, model.cfg)


async def _listen(args: argparse.Namespace) -> CallSummary | None:
    from call.console import SessionRef, keyboard, keys_hint, show_status
    from call.listener import Listener
    from codec.engine import prepare

    model, model_id, layers = _load(args)
    prepare(model, model_id, args.engine)
    web = _web_page(model, model_id, layers, args.ice_server, args.concealment) if args.web else None
    audio = _Audio(args, model.cfg)
    ref = SessionRef(denoise=args.denoise)
    status: list[asyncio.Task] = []

    def on_session(session) -> None:
        ref.session = session
        if session is not None and session.outgoing is not None and session.outgoing.has_denoise:
            session.outgoing.denoise = ref.denoise  # told before its first frame: --denoise, or as `d` left it
        if session is not None and not args.quiet:
            status.append(asyncio.create_task(show_status(session)))
        elif status:
            status.pop().cancel()
        if session is None:
            why = (listener.session.ended_by if listener.session is not None else "") or "set-up failed"
            print(f"call ended: {why}" + ("" if args.once else "; waiting for the next call"), file=sys.stderr)

    listener = Listener(
        model,
        model_id,
        audio.sink,
        args.token,
        args.stats_json,
        source_factory=audio.source,
        layers=layers,
        engine=args.engine,
        webrtc=not args.no_webrtc,
        ice_servers=args.ice_server,
        on_session=on_session,
        adapt=not args.no_adapt,
        protect=not args.no_protect,
        concealment=args.concealment,
        web=web,
    )
    try:
        server = await listener.serve(args.host, args.port, args.ssl_context)
    except OSError as exc:
        raise CodecError(f"cannot listen on {args.host}:{args.port}: {exc.strerror}") from None
    if not args.quiet:
        scheme = "wss" if args.ssl_context is not None else "ws"
        print(f"listening on {scheme}://{args.host}:{server.sockets[0].getsockname()[1]} ({keys_hint(model.cfg.denoise_conditioning)})", file=sys.stderr)
    if web is not None and not args.quiet:
        scheme = "https" if args.ssl_context is not None else "http"
        print(f"browser page: {scheme}://{args.host}:{server.sockets[0].getsockname()[1]}/ (the token goes in the page, or after #token=)", file=sys.stderr)
    if args.fingerprint is not None:  # what a caller pins (--pin): printed even with --quiet
        print(f"certificate SHA-256 fingerprint: {args.fingerprint}", file=sys.stderr)
    with keyboard(ref):
        async with server:
            if args.once:
                await listener.call_ended.wait()
            else:
                await server.serve_forever()
    return listener.calls[-1] if listener.calls else None


def _web_page(model, model_id: str, layers: int, ice_servers: list[str], concealment: str):
    """The browser page and the codec files it loads (`--web`), offering with the listener's
    `--ice-server`s and concealing as the listener does (`--concealment`); a CodecError when it
    cannot be served."""
    from call.web import WebPage
    from codec.web_export import PageConcealment, export_web_model
    from receiver.concealment import NEURAL_FADE, NEURAL_HOLD, neural_predictor

    predictor = neural_predictor(concealment, model)
    page_concealment = None if predictor is None else PageConcealment(predictor, NEURAL_FADE, NEURAL_HOLD)
    return WebPage(export_web_model(model, model_id, layers, page_concealment), ice_servers=ice_servers)


async def _call(args: argparse.Namespace) -> CallerSummary:
    from call.caller import SetupFailed, dial
    from call.console import SessionRef, keyboard, keys_hint, show_status
    from call.session import CallSession
    from codec.engine import prepare
    from receiver.incoming import IncomingStream
    from transmitter.sender import CallRefused, Transmitter
    from transmitter.sources import ContinuingSource
    from transport.base import TransportClosed
    from transport.webrtc import WebRTCTransport

    model, model_id, layers = _load(args)
    cfg = model.cfg
    audio = _Audio(args, cfg)
    transmitter = Transmitter(model, model_id, layers, args.token, args.denoise, engine=args.engine, adapt=not args.no_adapt, protect=not args.no_protect)
    prepare(model, model_id, args.engine)
    loop = asyncio.get_running_loop()
    sink = audio.sink()
    source = ContinuingSource(audio.source(), cfg.hop / cfg.sample_rate)
    ref = SessionRef(denoise=args.denoise)
    reconnects = 0

    async def connect(deadline: float | None) -> tuple[Any, Any, float]:
        """Dial (connecting is retried inside `dial`); while reconnecting, redial every 0.5 s
        until `deadline`. A failure names its step: `call set-up failed at hello: wrong token`."""
        # The incoming half is built before dialing: the listener's media starts right after
        # set-up and must not queue behind our set-up.
        incoming = IncomingStream(model, model_id, sink, None, args.engine, close_sink=False, concealment=args.concealment)
        while True:
            started = loop.time()
            within = None if deadline is None else max(0.5, deadline - started)
            try:
                return (
                    incoming,
                    await dial(
                        args.url,
                        transmitter,
                        args.transport,
                        args.ice_server,
                        args.webrtc_timeout,
                        ssl_context=args.ssl_context,
                        pin=args.pin,
                        connect_within=within,
                    ),
                    1000 * (loop.time() - started),
                )
            except (CallRefused, TransportClosed) as exc:
                if deadline is None or loop.time() > deadline:
                    incoming.close()
                    if isinstance(exc, SetupFailed):
                        raise CodecError(f"call set-up failed at {exc.step}: {exc.reason}") from None
                    raise CodecError(f"call set-up failed: {exc}") from None
                await asyncio.sleep(0.5)

    try:
        try:
            incoming, dialed, setup_ms = await connect(None)
        except CodecError:
            if args.output != "speaker":
                sink.discard()  # ours, written aside: an existing output stays as it was
            else:
                sink.close()
            raise
        first_setup_ms = setup_ms
        with keyboard(ref):
            while True:
                if not args.quiet:
                    print(
                        f"connected to {args.url} in {setup_ms:.0f} ms, media over {dialed.media_path} ({keys_hint(transmitter.has_denoise)})", file=sys.stderr
                    )
                if args.inject_loss and isinstance(dialed.transport, WebRTCTransport):
                    dialed.transport.inject_loss(args.inject_loss)
                incoming.transport = dialed.transport
                session = ref.session = CallSession(dialed.transport, transmitter, source, incoming, state=dialed.state)
                status = None if args.quiet else asyncio.create_task(show_status(session))
                try:
                    summary = await session.run()
                finally:
                    if status is not None:
                        status.cancel()
                    await dialed.transport.close("call ended")
                link_lost = summary.ended_by.startswith("link closed")
                if not link_lost or source.finished or args.reconnect_s <= 0:
                    break
                print(f"link lost ({summary.ended_by}): reconnecting for up to {args.reconnect_s:g} s", file=sys.stderr)
                try:
                    incoming, dialed, setup_ms = await connect(loop.time() + args.reconnect_s)
                except CodecError as exc:
                    print(f"could not reconnect: {exc}", file=sys.stderr)
                    break
                reconnects += 1
    finally:
        sink.close()
        source.close()
    dropped = dialed.transport.dropped_datagrams if isinstance(dialed.transport, WebRTCTransport) else None
    caller = CallerSummary(**dict(summary), media=dialed.media_path, setup_ms=round(first_setup_ms, 1), reconnects=reconnects, dropped_datagrams=dropped)
    print(f"call ended: {caller.ended_by}", file=sys.stderr)
    if args.stats_json is not None:
        try:
            append_json_line(args.stats_json, caller.json_record())
        except OSError as exc:
            print(json.dumps(caller.json_record()))  # the statistics are not lost
            raise CodecError(f"cannot write --stats-json {args.stats_json}: {exc.strerror}") from None
    return caller


def main(command: str, argv: list[str]) -> int:
    parser = listen_parser() if command == "listen" else call_parser()
    args = parser.parse_args(argv)

    def body() -> None:
        _check(command, args)
        result = asyncio.run(_listen(args) if command == "listen" else _call(args))
        if result is not None:
            print(json.dumps(result.json_record()))

    return run_main(body)
