"""python -m transmitter --connect ws://HOST:PORT --input FILE|tone [--kbps K] [--token T]"""

from __future__ import annotations

import argparse
import asyncio
import json
import sys
from pathlib import Path

from codec.engine import DEFAULT_ENGINE, ENGINES
from codec.errors import CodecError


def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="python -m transmitter", description="Stream audio to a receiver.")
    p.add_argument("--connect", help="ws://HOST:PORT of the receiver")
    p.add_argument("--input", help="'mic', an audio file, or 'tone'")
    p.add_argument("--device", help="microphone name or index (see --list-devices)")
    p.add_argument("--seconds", type=float, help="stop the microphone after this long")
    p.add_argument("--list-devices", action="store_true", help="list audio devices and exit")
    group = p.add_mutually_exclusive_group()
    group.add_argument("--kbps", type=float, default=6.0)
    group.add_argument("--layers", type=int)
    p.add_argument("--token", default="", help="the listener's shared secret (or --token-file, or $SSVOIP_TOKEN)")
    p.add_argument("--token-file", type=Path, help="read the token from this file")
    p.add_argument("--denoise", action="store_true")
    p.add_argument("--fast", action="store_true", help="send a file as fast as possible instead of in real time")
    p.add_argument("--no-adapt", action="store_true", help="keep the layer count fixed (no bandwidth estimate)")
    p.add_argument("--no-protect", action="store_true", help="no redundancy under loss")
    p.add_argument("--engine", default=DEFAULT_ENGINE, choices=list(ENGINES), help=f"codec engine (default {DEFAULT_ENGINE})")
    p.add_argument("--model", help="codec model (python -m codec models; default: the shipped default)")
    return p


async def _run(args: argparse.Namespace) -> dict:
    import torch

    from codec.engine import prepare
    from codec.weights import load_model
    from transmitter.sender import CallFailed, CallRefused, Transmitter
    from transmitter.sources import FileSource, MicSource, ToneSource
    from transport.base import TransportClosed
    from transport.websocket import WebSocketTransport

    torch.set_num_threads(1)
    model, model_id = load_model(name=args.model)
    cfg = model.cfg
    layers = args.layers if args.layers is not None else cfg.layers_for_kbps(args.kbps)
    if not 1 <= layers <= cfg.n_quantizers:
        raise CodecError(f"--layers must be in 1..{cfg.n_quantizers}")
    if args.input == "tone":
        source = ToneSource(cfg.sample_rate, cfg.hop, realtime=not args.fast)
    elif args.input == "mic":
        device = int(args.device) if args.device and args.device.isdigit() else args.device
        source = MicSource(cfg.sample_rate, cfg.hop, device, args.seconds)
    else:
        source = FileSource(Path(args.input), cfg.sample_rate, cfg.hop, realtime=not args.fast)
    try:
        transport = await WebSocketTransport.connect(args.connect)
        prepare(model, model_id, args.engine)
        stats = await Transmitter(
            model, model_id, layers, args.token, args.denoise, args.engine, adapt=not args.no_adapt, protect=not args.no_protect,
        ).run(transport, source)
        await transport.close("done")
    except (CallRefused, CallFailed, TransportClosed) as exc:
        raise CodecError(f"call failed: {exc}") from None
    cpu = round(100 * stats.cpu_seconds / stats.wall_seconds, 1) if stats.wall_seconds else None
    return {"frames": stats.frames, "sent": stats.sent, "skipped": stats.skipped, "bytes": stats.bytes, "cpu_percent_of_one_core": cpu}


def main(argv: list[str] | None = None) -> int:
    parser = _parser()
    args = parser.parse_args(argv)
    try:
        if args.list_devices:
            from transmitter.sources import list_devices

            print(list_devices())
            return 0
        if not args.connect or not args.input:
            parser.error("--connect and --input are required")
        from call.options import check_kbps, check_url, read_token

        check_url(args.connect)
        if args.layers is None:
            check_kbps(args.kbps)
        args.token = read_token(args.token, args.token_file)
        print(json.dumps(asyncio.run(_run(args))))
    except CodecError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        return 130
    return 0


if __name__ == "__main__":
    sys.exit(main())
