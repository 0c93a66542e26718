"""python -m receiver --listen HOST:PORT --output FILE [--stats-json PATH] [--token T] [--once]"""

from __future__ import annotations

import argparse
import asyncio
import json
import sys
from pathlib import Path

from call.options import token_options
from codec.command_line import engine_options, force_option, model_option, quiet_option, run_main
from codec.errors import CodecError
from receiver.concealment import concealment_option


def _parser() -> argparse.ArgumentParser:
    parents = [token_options(), engine_options(), concealment_option(), model_option(), force_option("an existing output file"), quiet_option()]
    p = argparse.ArgumentParser(prog="python -m receiver", description="Receive a stream and play or record it.", parents=parents)
    p.add_argument("--listen", default="127.0.0.1:8765", help="HOST:PORT to listen on")
    p.add_argument("--output", required=True, help="'speaker' or a WAV file")
    p.add_argument("--device", help="speaker name or index (python -m transmitter --list-devices)")
    p.add_argument("--stats-json", type=Path, help="write the call's statistics here when it ends")
    p.add_argument("--once", action="store_true", help="exit after the first call")
    return p


def _address(text: str) -> tuple[str, int]:
    host, _, port = text.rpartition(":")
    if not host or not port.isdigit() or not 0 <= int(port) <= 65535:
        raise CodecError(f"--listen wants HOST:PORT, not {text!r}")
    return host, int(port)


async def _run(args: argparse.Namespace) -> None:
    import torch

    from call.console import SessionRef, show_status
    from call.listener import Listener
    from codec.engine import prepare
    from codec.weights import load_model
    from receiver.sinks import SpeakerSink, WavSink

    from call.options import call_output, check_writable, read_token

    host, port = _address(args.listen)
    args.token = read_token(args.token, args.token_file)
    if args.output != "speaker":
        check_writable(Path(args.output), "--output")
    if args.stats_json is not None:
        check_writable(args.stats_json, "--stats-json")
    torch.set_num_threads(1)
    model, model_id = load_model(name=args.model)
    cfg = model.cfg
    if args.output == "speaker":
        device = int(args.device) if args.device and args.device.isdigit() else args.device
        try:
            SpeakerSink(cfg.sample_rate, cfg.hop, device).close()  # fail now, not when a call arrives
        except Exception as exc:  # PortAudio reports through several exception types
            raise CodecError(f"cannot open the speaker {args.device!r}: {exc}") from None

        def sink():
            return SpeakerSink(cfg.sample_rate, cfg.hop, device)
    else:
        output = Path(args.output)
        if output.exists() and not args.force:
            raise CodecError(f"{output}: already exists (pass --force to overwrite)")

        calls = [0]

        def sink():  # without --once, each call its own file: out.wav, out-2.wav, ... (never overwritten)
            calls[0] += 1
            return WavSink(call_output(output, calls[0], args.force), cfg.sample_rate)

    prepare(model, model_id, args.engine)
    ref, status = SessionRef(), []

    def on_session(session) -> None:
        ref.session = session
        if session is not None and not args.quiet:
            status.append(asyncio.create_task(show_status(session)))
        elif status:
            status.pop().cancel()

    receiver = Listener(model, model_id, sink, args.token, args.stats_json, engine=args.engine, on_session=on_session, concealment=args.concealment)
    try:
        server = await receiver.serve(host, port)
    except OSError as exc:
        raise CodecError(f"cannot listen on {host}:{port}: {exc.strerror}") from None
    if not args.quiet:
        print(f"listening on ws://{host}:{port}", file=sys.stderr)
    async with server:
        if args.once:
            await receiver.call_ended.wait()
        else:
            await server.serve_forever()
    if receiver.calls:
        print(json.dumps(receiver.calls[-1].json_record()))


def main(argv: list[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    return run_main(lambda: asyncio.run(_run(args)))


if __name__ == "__main__":
    sys.exit(main())
