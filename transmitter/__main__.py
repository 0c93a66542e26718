"""python -m transmitter --connect ws://HOST:PORT --input FILE|tone [--kbps K] [--token T] [--denoise]"""

from __future__ import annotations

import argparse
import asyncio
import json
import sys
from pathlib import Path

from call.options import denoise_option, token_options
from codec.command_line import check_rate, engine_options, layers_for, model_option, rate_options, run_main
from codec.errors import CodecError


def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="python -m transmitter",
        description="Stream audio to a receiver.",
        parents=[rate_options(), token_options(), engine_options(), model_option(), denoise_option()],
    )
    p.add_argument("--connect", help="ws://HOST:PORT of the receiver")
    p.add_argument("--input", help="'mic', an audio file, or 'tone'")
    p.add_argument("--device", help="microphone name or index (see --list-devices)")
    p.add_argument("--seconds", type=float, help="stop the microphone after this long")
    p.add_argument("--list-devices", action="store_true", help="list audio devices and exit")
    p.add_argument("--fast", action="store_true", help="send a file as fast as possible instead of in real time")
    p.add_argument("--no-adapt", action="store_true", help="keep the layer count fixed (no bandwidth estimate)")
    p.add_argument("--no-protect", action="store_true", help="no redundancy under loss")
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
    layers = layers_for(args.kbps, args.layers, cfg)
    source: ToneSource | MicSource | FileSource
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
        stats = await Transmitter(model, model_id, layers, args.token, args.denoise, args.engine, adapt=not args.no_adapt, protect=not args.no_protect).run(
            transport, source
        )
        await transport.close("done")
    except (CallRefused, CallFailed, TransportClosed) as exc:
        raise CodecError(f"call failed: {exc}") from None
    return stats.snapshot(source).model_dump(mode="json")


def main(argv: list[str] | None = None) -> int:
    parser = _parser()
    args = parser.parse_args(argv)

    def body() -> None:
        if args.list_devices:
            from transmitter.sources import list_devices

            print(list_devices())
            return
        if not args.connect or not args.input:
            parser.error("--connect and --input are required")
        from call.options import check_denoise, check_url, read_token

        check_url(args.connect)
        check_rate(args.kbps, args.layers)
        check_denoise(args.model, args.denoise)
        args.token = read_token(args.token, args.token_file)
        print(json.dumps(asyncio.run(_run(args))))

    return run_main(body)


if __name__ == "__main__":
    sys.exit(main())
