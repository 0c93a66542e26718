"""`ssvoip loopback`: a one-way call on 127.0.0.1 with the bundled speech sample.

A receiver (websocket server) and a transmitter run in this process and stream the sample
in real time; the received audio is written to OUT/received.wav and scored against the
input (PESQ-WB, STOI), and the call's statistics are printed.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import sys
from pathlib import Path

from call.options import check_denoise, denoise_option
from codec.command_line import DEFAULT_KBPS, check_rate, force_option, model_option, run_main

SAMPLE = Path(__file__).resolve().parents[1] / "codec" / "samples" / "speech.wav"


async def run_loopback(kbps: float, out: Path, model_name: str | None = None, denoise: bool = False) -> dict:
    import numpy as np
    import soundfile as sf
    import torch

    from codec.audio_io import load_audio
    from codec.train.evaluate import metrics
    from codec.weights import load_model
    from call.listener import Listener
    from codec.engine import prepare
    from receiver.sinks import WavSink
    from transmitter.sender import Transmitter
    from transmitter.sources import FileSource
    from transport.websocket import WebSocketTransport

    torch.set_num_threads(1)
    model, model_id = load_model(name=model_name)
    cfg = model.cfg
    out.mkdir(parents=True, exist_ok=True)
    received_path = out / "received.wav"
    prepare(model, model_id)
    receiver = Listener(model, model_id, lambda: WavSink(received_path, cfg.sample_rate), stats_json=out / "stats.json")
    server = await receiver.serve("127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    async with server:
        transport = await WebSocketTransport.connect(f"ws://127.0.0.1:{port}")
        sent = await Transmitter(model, model_id, cfg.layers_for_kbps(kbps), denoise=denoise).run(transport, FileSource(SAMPLE, cfg.sample_rate, cfg.hop))
        await asyncio.wait_for(receiver.call_ended.wait(), timeout=60)
    audio, _ = load_audio(SAMPLE, cfg.sample_rate)
    received, _ = sf.read(received_path, dtype="float32")
    quality = metrics(audio, np.pad(received, (0, max(0, audio.size - received.size)))[: audio.size])
    return {
        "model_id": model_id,
        "kbps": cfg.kbps_for_layers(cfg.layers_for_kbps(kbps)),
        "denoise": denoise,
        "sent_frames": sent.sent,
        "skipped_frames": sent.skipped,
        "call": receiver.calls[0].json_record()["received"],
        "received_vs_input": {k: round(v, 3) for k, v in quality.items()},
        "received_wav": str(received_path),
    }


_FILES = ("received.wav", "stats.json")


def _fresh_out(out: Path, force: bool) -> Path:
    """`out`, or with an earlier run's files in it, out-2, out-3, ... (never overwritten
    without `force`; with it, the earlier files go: the statistics are appended per call)."""
    if force:
        for name in _FILES:
            (out / name).unlink(missing_ok=True)
        return out
    n, candidate = 1, out
    while any((candidate / name).exists() for name in _FILES):
        n += 1
        candidate = out.with_name(f"{out.name}-{n}")
    return candidate


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(
        prog="ssvoip loopback", description=__doc__, parents=[model_option(), force_option("an earlier run's files in --out"), denoise_option()]
    )
    p.add_argument("--kbps", type=float, default=DEFAULT_KBPS, help=f"payload bitrate; picks the most layers that fit (default {DEFAULT_KBPS:g})")
    p.add_argument("--out", type=Path, default=Path("out/loopback"))
    args = p.parse_args(argv)

    def body() -> None:
        check_rate(args.kbps, None)
        check_denoise(args.model, args.denoise)
        out = _fresh_out(args.out, args.force)
        if out != args.out:
            print(f"{args.out} holds an earlier run (--force overwrites it): writing to {out}", file=sys.stderr)
        result = asyncio.run(run_loopback(args.kbps, out, args.model, args.denoise))
        print(json.dumps(result, indent=1))

    return run_main(body)
