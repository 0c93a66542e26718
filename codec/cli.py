"""`python -m codec`: encode, decode, round trips, file info, benchmark, training, evaluation."""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from codec.baselines.enhancers import ENHANCERS as DENOISE_ENHANCERS
from codec.baselines.lyra import DEFAULT_MODELS as DEFAULT_LYRA_MODELS
from codec.command_line import engine_options, force_option, layers_for, model_option, quiet_option, rate_options, run_main
from codec.errors import CodecError

if TYPE_CHECKING:
    from codec.bitstream import CodedAudio

# Files longer than this many frames show a progress bar while coding.
_PROGRESS_FRAMES = 1500
_CHUNK_FRAMES = 250
EVAL_KBPS = [3.0, 6.0, 12.0]
EVAL_OPUS_KBPS = [6.0, 8.0, 12.0]
DENOISE_KBPS = 6.0  # the denoise table's rate (issue #17)


def _output_rate(args: argparse.Namespace, source_rate: int) -> int:
    from codec.bitstream import MAX_SOURCE_RATE

    if args.rate is not None and not 1000 <= args.rate <= MAX_SOURCE_RATE:
        raise CodecError(f"--rate must be in 1000..{MAX_SOURCE_RATE} Hz, not {args.rate}")
    return args.rate or source_rate


def _refuse_overwrite(path: Path, force: bool, *inputs: Path) -> None:
    """Checked before any work: the output must be new (or forced), not an input, and writable there."""
    if not path.parent.is_dir():
        raise CodecError(f"{path}: no such folder {path.parent}")
    if any(path.resolve() == p.resolve() for p in inputs):
        raise CodecError(f"{path}: output would overwrite the input")
    if path.exists() and not force:
        raise CodecError(f"{path}: already exists (pass --force to overwrite)")


def _load(args: argparse.Namespace):
    from codec.weights import load_model

    return load_model(name=getattr(args, "model", None))


def _encode_audio(model, audio: np.ndarray, layers: int, denoise: bool, progress: bool) -> np.ndarray:
    """Whole signal -> codes [frames, layers], streamed in chunks (bounded memory, progress)."""
    import torch
    from tqdm import tqdm

    from codec.streaming import StreamingEncoder

    hop = model.cfg.hop
    frames = -(-audio.size // hop)
    padded = np.zeros(frames * hop, dtype=np.float32)
    padded[: audio.size] = audio
    out = np.zeros((frames, layers), dtype=np.int64)
    with StreamingEncoder(model) as encoder, tqdm(total=frames, unit="frame", disable=not progress or frames < _PROGRESS_FRAMES) as bar:
        for start in range(0, frames, _CHUNK_FRAMES):
            stop = min(frames, start + _CHUNK_FRAMES)
            codes = encoder.encode(torch.from_numpy(padded[start * hop : stop * hop]), layers, float(denoise))
            out[start:stop] = codes[0].t().numpy()
            bar.update(stop - start)
    return out


def _decode_codes(model, codes: np.ndarray, counts: np.ndarray, denoise: bool, progress: bool) -> np.ndarray:
    import torch
    from tqdm import tqdm

    from codec.streaming import StreamingDecoder

    frames = codes.shape[0]
    chunks = []
    with StreamingDecoder(model) as decoder, tqdm(total=frames, unit="frame", disable=not progress or frames < _PROGRESS_FRAMES) as bar:
        for start in range(0, frames, _CHUNK_FRAMES):
            stop = min(frames, start + _CHUNK_FRAMES)
            c = torch.from_numpy(codes[start:stop].T.copy()).unsqueeze(0)
            n = torch.from_numpy(counts[start:stop].astype(np.int64)).unsqueeze(0)
            chunks.append(decoder.decode(c, n, float(denoise))[0].numpy())
            bar.update(stop - start)
    return np.concatenate(chunks) if chunks else np.zeros(0, np.float32)


def _read_input(path: Path, rate: int) -> tuple[np.ndarray, int]:
    from codec.audio_io import load_audio

    audio, source_rate = load_audio(path, rate)
    if audio.size == 0:
        raise CodecError(f"{path}: contains no audio samples")
    return audio, source_rate


def _encode_input(args: argparse.Namespace):
    """Shared by encode and roundtrip: checks, model, input audio -> (model, CodedAudio)."""
    from codec.bitstream import CodedAudio

    _refuse_overwrite(args.output, args.force, args.input)
    model, model_id = _load(args)
    cfg = model.cfg
    if args.denoise and not cfg.denoise_conditioning:
        raise CodecError(f"model {model_id} has no denoise switch (choose one with --model; `python -m codec models`)")
    layers = layers_for(args.kbps, args.layers, cfg)
    audio, source_rate = _read_input(args.input, cfg.sample_rate)
    codes = _encode_audio(model, audio, layers, args.denoise, not args.quiet)
    counts = np.full(codes.shape[0], layers, dtype=np.uint8)
    return model, CodedAudio(model_id, cfg.sample_rate, source_rate, audio.size, cfg.bits_per_code, counts, codes, args.denoise)


def cmd_encode(args: argparse.Namespace) -> None:
    from codec.bitstream import dumps

    model, coded = _encode_input(args)
    cfg = model.cfg
    data = dumps(coded)
    args.output.write_bytes(data)
    layers = int(coded.layer_counts[0])
    if not args.quiet:
        print(
            f"{args.output}: {coded.frames} frames, {layers} layers ({cfg.kbps_for_layers(layers):g} kbps payload), "
            f"{len(data)} bytes ({8 * len(data) / (coded.samples / cfg.sample_rate) / 1000:.2f} kbps with container)"
        )


def _decode_file(path: Path, model, model_id: str, progress: bool) -> tuple[np.ndarray, CodedAudio]:
    from codec.bitstream import read_file

    coded = read_file(path, model.cfg.hop)
    if coded.model_id != model_id:
        raise CodecError(f"{path}: encoded by model {coded.model_id}, this installation has {model_id}")
    if coded.sample_rate != model.cfg.sample_rate or coded.bits != model.cfg.bits_per_code:
        raise CodecError(f"{path}: sample rate or code width does not match the model")
    if coded.codes.shape[1] > model.cfg.n_quantizers:
        raise CodecError(f"{path}: uses {coded.codes.shape[1]} layers, the model has {model.cfg.n_quantizers}")
    audio = _decode_codes(model, coded.codes, coded.layer_counts, coded.denoise, progress)[: coded.samples]
    return audio, coded


def _load_for_file(path: Path, args: argparse.Namespace):
    """The model `--model` names, else the shipped model that encoded the file at `path`."""
    from codec.bitstream import peek_model_id
    from codec.weights import load_model, model_name_for_id

    if args.model is None:
        name = model_name_for_id(peek_model_id(path))
        if name is not None:
            return load_model(name=name)
    return _load(args)


def cmd_decode(args: argparse.Namespace) -> None:
    from codec.audio_io import resample, write_audio

    _refuse_overwrite(args.output, args.force, args.input)
    model, model_id = _load_for_file(args.input, args)
    audio, coded = _decode_file(args.input, model, model_id, not args.quiet)
    rate = _output_rate(args, coded.source_rate)
    write_audio(args.output, resample(audio, model.cfg.sample_rate, rate), rate)
    if not args.quiet:
        print(f"{args.output}: {audio.size / model.cfg.sample_rate:.2f} s at {rate} Hz")


def cmd_roundtrip(args: argparse.Namespace) -> None:
    from codec.audio_io import resample, write_audio

    _output_rate(args, 16_000)  # a bad --rate fails before the input is coded
    model, coded = _encode_input(args)
    cfg = model.cfg
    decoded = _decode_codes(model, coded.codes, coded.layer_counts, coded.denoise, not args.quiet)[: coded.samples]
    rate = _output_rate(args, coded.source_rate)
    write_audio(args.output, resample(decoded, cfg.sample_rate, rate), rate)
    layers = int(coded.layer_counts[0])
    if not args.quiet:
        print(f"{args.output}: {layers} layers ({cfg.kbps_for_layers(layers):g} kbps), {coded.samples / cfg.sample_rate:.2f} s at {rate} Hz")


def cmd_info(args: argparse.Namespace) -> None:
    from codec.bitstream import MAGIC, read_file

    path: Path = args.file
    if not path.is_file():
        raise CodecError(f"{path}: no such file")
    with path.open("rb") as f:
        head = f.read(4)
    if head == MAGIC:
        model, model_id = _load_for_file(path, args)
        coded = read_file(path, model.cfg.hop)
        seconds = coded.samples / coded.sample_rate
        counts = coded.layer_counts.astype(int)
        info = {
            "file": str(path),
            "kind": "ssc",
            "model_id": coded.model_id,
            "model_matches": coded.model_id == model_id,
            "bits_per_stage": coded.bits,
            "sample_rate": coded.sample_rate,
            "source_rate": coded.source_rate,
            "seconds": round(seconds, 3),
            "frames": coded.frames,
            "layers_min": int(counts.min()) if counts.size else 0,
            "layers_max": int(counts.max()) if counts.size else 0,
            "payload_kbps": round(float(counts.mean()) * model.cfg.bps_per_layer / 1000, 3) if counts.size else 0.0,
            "file_kbps": round(8 * path.stat().st_size / seconds / 1000, 3) if seconds else 0.0,
            "denoise": coded.denoise,
        }
    else:
        from codec.audio_io import read_audio
        import soundfile as sf

        audio, rate = read_audio(path)
        info = {"file": str(path), "kind": "audio", "sample_rate": rate, "seconds": round(audio.size / rate, 3)}
        try:
            meta = sf.info(str(path))
            info |= {"channels": meta.channels, "format": meta.format, "subtype": meta.subtype}
        except (sf.LibsndfileError, RuntimeError):
            pass
    if args.json:
        print(json.dumps(info))
    else:
        width = max(len(k) for k in info)
        for key, value in info.items():
            print(f"{key:<{width}}  {value}")


def cmd_bench(args: argparse.Namespace) -> None:
    from bench.codec_speed import run_benchmark

    result = run_benchmark(frames=args.frames)
    if args.json:
        print(json.dumps(result))
    else:
        for key, value in result.items():
            print(f"{key}: {value}")


def cmd_demo(args: argparse.Namespace) -> None:
    """Round trip of the bundled speech sample at several bitrates, with timing and quality."""
    import time

    import torch

    from codec.audio_io import write_audio
    from codec.streaming import StreamingDecoder, StreamingEncoder
    from codec.train.evaluate import metrics

    torch.set_num_threads(1)
    model, model_id = _load(args)
    cfg = model.cfg
    sample = Path(__file__).parent / "samples" / "speech.wav"
    audio, _ = _read_input(sample, cfg.sample_rate)
    args.out.mkdir(parents=True, exist_ok=True)
    seconds = audio.size / cfg.sample_rate
    print(f"model {model_id}: {cfg.sample_rate} Hz, {cfg.frame_ms:g} ms frames, algorithmic latency {cfg.algorithmic_latency_ms:g} ms")
    print(f"sample {sample.name}: {seconds:.2f} s; streaming one frame at a time on one thread\n")
    print(f"{'kbps':>5} {'layers':>6} {'bytes/frame':>11} {'enc ms/frame':>12} {'dec ms/frame':>12} {'RTF':>6} {'PESQ-WB':>7} {'STOI':>6}")
    for kbps in args.kbps:
        layers = cfg.layers_for_kbps(kbps)
        frames = -(-audio.size // cfg.hop)
        x = torch.zeros(frames * cfg.hop)
        x[: audio.size] = torch.from_numpy(audio)
        blocks = x.view(frames, cfg.hop)
        enc_s = dec_s = 0.0
        out = []
        with StreamingEncoder(model) as encoder, StreamingDecoder(model) as decoder:
            for t in range(frames):
                t0 = time.perf_counter()
                codes = encoder.encode(blocks[t : t + 1], layers)
                t1 = time.perf_counter()
                out.append(decoder.decode(codes)[0])
                enc_s += t1 - t0
                dec_s += time.perf_counter() - t1
        decoded = torch.cat(out).numpy()[: audio.size]
        write_audio(args.out / f"speech_{cfg.kbps_for_layers(layers):g}kbps.wav", decoded, cfg.sample_rate)
        m = metrics(audio, decoded)
        enc_ms, dec_ms = 1000 * enc_s / frames, 1000 * dec_s / frames
        print(
            f"{cfg.kbps_for_layers(layers):>5g} {layers:>6} {(layers * cfg.bits_per_code + 7) // 8:>11} {enc_ms:>12.2f} {dec_ms:>12.2f} "
            f"{(enc_ms + dec_ms) / cfg.frame_ms:>6.3f} {m['pesq_wb']:>7.2f} {m['stoi']:>6.3f}"
        )
    print(f"\ndecoded audio in {args.out}/")


def cmd_train(args: argparse.Namespace) -> None:
    from codec.train.trainer import TrainConfig, Trainer

    if not args.config.is_file():
        raise CodecError(f"{args.config}: no such config file")
    try:
        cfg = TrainConfig.from_toml(args.config)
    except Exception as exc:  # tomllib and pydantic both describe the problem in their message
        raise CodecError(f"{args.config}: invalid training config ({str(exc).splitlines()[0]})") from None
    overrides = {k: v for k, v in (("out_dir", args.out), ("data_dir", args.data), ("init_from", args.init_from)) if v is not None}
    cfg = cfg.model_copy(update=overrides)
    if not (cfg.data_dir / "speech.npy").exists():
        raise CodecError(f"{cfg.data_dir}: no training data (run: python -m codec data build --out {cfg.data_dir})")
    trainer = Trainer(cfg, progress=not args.quiet)
    try:
        if trainer.resume():
            if trainer.dist.is_main:
                print(f"resumed {trainer.ckpt_path} at step {trainer.step}", file=sys.stderr)
        elif trainer.dist.is_main and (cfg.out_dir / "log.csv").exists():  # other ranks may see rank 0's new log
            raise CodecError(f"{cfg.out_dir}: holds a log but no checkpoint; choose another --out")
        trainer.run(steps=args.steps)
    finally:
        trainer.dist.close()


def cmd_data(args: argparse.Namespace) -> None:
    from codec.train.data import build_dataset
    from codec.train.portable import pack, unpack

    if args.action == "pack":
        if not (args.source / "manifest.json").is_file():
            raise CodecError(f"{args.source}: no data set to pack (run: python -m codec data build)")
        if (args.out / "pack.json").exists() and not args.force:
            raise CodecError(f"{args.out}: already holds a pack (pass --force to replace it)")
        print(json.dumps(pack(args.source, args.out, args.minutes, seed=args.seed)))
        return
    if args.action == "unpack":
        if not (args.source / "pack.json").is_file():
            raise CodecError(f"{args.source}: not a pack (no pack.json)")
        if (args.out / "speech.npy").exists() and not args.force:
            raise CodecError(f"{args.out}: already holds training data (pass --force to replace it)")
        print(json.dumps(unpack(args.source, args.out)))
        return
    if (args.out / "manifest.json").exists() and not args.force:
        raise CodecError(f"{args.out}: already holds a data set (pass --force to rebuild)")
    manifest = build_dataset(args.out, seed=args.seed, tts_sentences=args.tts_sentences, progress=not args.quiet)
    print(json.dumps(manifest["seconds"]))


def cmd_export(args: argparse.Namespace) -> None:
    import torch

    from codec.config import CodecConfig
    from codec.model import Codec
    from codec.weights import WEIGHTS_DIR, save_model

    if not args.checkpoint.is_file():
        raise CodecError(f"{args.checkpoint}: no such checkpoint")
    state = torch.load(args.checkpoint, map_location="cpu", weights_only=False)
    model = Codec(CodecConfig.model_validate(state["config"]["codec"]))
    model.load_state_dict(state["model"])
    out = args.out or WEIGHTS_DIR
    if (out / "ssc16k.pt").exists() and not args.force:
        raise CodecError(f"{out}: already holds a model (pass --force to replace it)")
    print(save_model(model, out))


def cmd_models(args: argparse.Namespace) -> None:
    from codec.config import parse_config
    from codec.weights import DEFAULT_MODEL, available_models, describe_model

    rows = []
    for name in available_models():
        meta = describe_model(name)
        cfg = parse_config(meta["config"])
        rows.append(
            {
                "name": name,
                "model_id": meta["model_id"],
                "family": cfg.family,
                "default": name == DEFAULT_MODEL,
                "stages": cfg.n_quantizers,
                "bits_per_stage": cfg.bits_per_code,
                "kbps_per_stage": cfg.kbps_for_layers(1),
                "max_kbps": cfg.kbps_for_layers(cfg.n_quantizers),
                "denoise": cfg.denoise_conditioning,
                "weights_from": meta.get("source", {}).get("repository", "this project"),
            }
        )
    if args.json:
        print(json.dumps(rows))
        return
    for r in rows:
        mark = " (default)" if r["default"] else ""
        print(
            f"{r['name']}{mark}: {r['model_id']}, {r['family']} family, {r['stages']} stages of {r['bits_per_stage']} bits "
            f"({r['kbps_per_stage']:g} kbps each, up to {r['max_kbps']:g} kbps), denoise {'yes' if r['denoise'] else 'no'}, weights from {r['weights_from']}"
        )


def cmd_import_lyra(args: argparse.Namespace) -> None:
    from codec.lyra_import import MODEL_NAME, write_model

    out = args.out
    if (out / f"{MODEL_NAME}.pt").exists() and not args.force:
        raise CodecError(f"{out}: already holds {MODEL_NAME} (pass --force to replace it)")
    print(write_model(args.models, out))


def cmd_extend_stages(args: argparse.Namespace) -> None:
    from codec.stage_fit import write_extended_model

    if (args.out / f"{args.name}.pt").exists() and not args.force:
        raise CodecError(f"{args.out}: already holds {args.name} (pass --force to replace it)")
    if not (args.data / "speech.npy").is_file() or not (args.data / "speech_val.npy").is_file():
        raise CodecError(f"{args.data}: no training data (run: python -m codec data build --out {args.data})")
    print(json.dumps(write_extended_model(args.data, args.out, args.base, args.name, args.bits, args.stages, args.frames, args.iterations, args.seed)))


def cmd_eval(args: argparse.Namespace) -> None:
    if args.out is not None and (args.out / "results.json").exists() and not args.force:
        raise CodecError(f"{args.out}: already holds results (pass --force to overwrite)")
    if args.noise_snr:
        from codec.train.denoise_evaluation import denoise_folder

        denoise_folder(
            args.clips,
            args.noise_snr,
            args.kbps or [DENOISE_KBPS],
            args.enhancers,
            args.out,
            args.weights,
            args.model,
            args.noise_music,
            args.engine,
            not args.quiet,
            args.asr,
            args.opus_kbps or [],
            args.lyra_kbps,
            args.lyra_models,
        )
        return
    from codec.train.evaluate import evaluate_folder

    evaluate_folder(
        args.clips,
        args.kbps or EVAL_KBPS,
        EVAL_OPUS_KBPS if args.opus_kbps is None else args.opus_kbps,
        args.out,
        args.weights,
        args.engine,
        not args.quiet,
        args.dnsmos,
        args.asr,
        args.lyra_kbps,
        args.lyra_models,
        args.model,
    )


def _rates(kbps: list[float]) -> str:
    return " ".join(f"{k:g}" for k in kbps)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m codec", description=__doc__)
    sub = parser.add_subparsers(dest="command", required=True)

    output = [force_option("an existing output"), quiet_option()]
    encoding = [rate_options(), model_option(), *output]
    file_model = model_option("the shipped model that encoded the file")

    p = sub.add_parser("encode", help="audio file -> .ssc", parents=encoding)
    p.add_argument("input", type=Path)
    p.add_argument("output", type=Path)
    p.add_argument("--denoise", action="store_true", help="remove background noise while coding")
    p.set_defaults(func=cmd_encode)

    p = sub.add_parser("decode", help=".ssc -> audio file", parents=[file_model, *output])
    p.add_argument("input", type=Path)
    p.add_argument("output", type=Path)
    p.add_argument("--rate", type=int, help="output sample rate (default: the encoded file's original)")
    p.set_defaults(func=cmd_decode)

    p = sub.add_parser("roundtrip", help="audio -> codes -> audio", parents=encoding)
    p.add_argument("input", type=Path)
    p.add_argument("output", type=Path)
    p.add_argument("--rate", type=int, help="output sample rate (default: the input's)")
    p.add_argument("--denoise", action="store_true", help="remove background noise while coding")
    p.set_defaults(func=cmd_roundtrip)

    p = sub.add_parser("info", help="describe an .ssc or audio file", parents=[file_model])
    p.add_argument("file", type=Path)
    p.add_argument("--json", action="store_true")
    p.set_defaults(func=cmd_info)

    p = sub.add_parser("bench", help="streaming speed on one thread, against Opus")
    p.add_argument("--json", action="store_true")
    p.add_argument("--frames", type=int, default=500)
    p.set_defaults(func=cmd_bench)

    p = sub.add_parser("demo", help="round trip of the bundled speech sample, with timing and quality", parents=[model_option()])
    p.add_argument("--kbps", type=float, nargs="+", default=[3.0, 6.0, 12.0])
    p.add_argument("--out", type=Path, default=Path("out/demo"))
    p.set_defaults(func=cmd_demo)

    p = sub.add_parser("train", help="train a model from a TOML config", parents=[quiet_option()])
    p.add_argument("--config", type=Path, default=Path(__file__).parent / "train/configs/base.toml")
    p.add_argument("--out", type=Path, help="run folder (checkpoint, log.csv); resumes if it holds a checkpoint")
    p.add_argument("--data", type=Path, help="data folder from `data build`")
    p.add_argument("--init-from", type=Path, help="start a new run from the same-shaped tensors of this checkpoint")
    p.add_argument("--steps", type=int, help="stop after this many more steps")
    p.set_defaults(func=cmd_train)

    p = sub.add_parser(
        "data",
        help="build the training data set; pack / unpack a portable subset (for a lent GPU)",
        parents=[force_option("an existing data set or pack"), quiet_option()],
    )
    p.add_argument("action", choices=["build", "pack", "unpack"])
    p.add_argument("--source", type=Path, default=Path("data"), help="pack: the data set; unpack: the pack")
    p.add_argument("--minutes", type=float, default=45.0, help="pack: minutes of speech to take")
    p.add_argument("--out", type=Path, default=Path("data"))
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--tts-sentences", type=int, default=500)
    p.set_defaults(func=cmd_data)

    p = sub.add_parser("export", help="checkpoint -> shipped weights (codec/weights)", parents=[force_option("an existing model")])
    p.add_argument("checkpoint", type=Path)
    p.add_argument("--out", type=Path)
    p.set_defaults(func=cmd_export)

    p = sub.add_parser("models", help="list the shipped models with their rates")
    p.add_argument("--json", action="store_true")
    p.set_defaults(func=cmd_models)

    p = sub.add_parser(
        "import-lyra",
        help="convert Lyra v2's TFLite models into a shipped model of the soundstream family",
        parents=[force_option("an existing converted model")],
    )
    p.add_argument("models", type=Path, nargs="?", default=DEFAULT_LYRA_MODELS, help=f"folder of the three .tflite files (default: {DEFAULT_LYRA_MODELS})")
    p.add_argument("--out", type=Path, default=Path(__file__).parent / "weights")
    p.set_defaults(func=cmd_import_lyra)

    p = sub.add_parser(
        "extend-stages",
        help="fit residual stages after a model's last one (k-means on training latents; docs/models.md)",
        parents=[force_option("an existing model of that name")],
    )
    p.add_argument("--data", type=Path, default=Path("data"), help="data folder from `data build`")
    p.add_argument("--base", default="soundstream16k-lyra2", help="the shipped model to extend")
    p.add_argument("--name", default="soundstream16k-lyra2x", help="the extended model's name")
    p.add_argument("--bits", type=int, default=4, help="code width of the new stages (the base model's)")
    p.add_argument("--stages", type=int, default=34)
    p.add_argument("--frames", type=int, default=200_000, help="training latents (20 ms frames) to fit on")
    p.add_argument("--iterations", type=int, default=20, help="Lloyd iterations a stage")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--out", type=Path, default=Path(__file__).parent / "weights")
    p.set_defaults(func=cmd_extend_stages)

    offline_engine = engine_options("torch", help="torch: offline PyTorch; onnx / onnx-int8: frame by frame in onnxruntime")
    p = sub.add_parser("eval", help="score the model and Opus on a folder of clips", parents=[model_option(), offline_engine, *output])
    p.add_argument("clips", type=Path)
    p.add_argument("--kbps", type=float, nargs="+", help=f"our codec's rates (default: {_rates(EVAL_KBPS)}; {DENOISE_KBPS:g} with --noise-snr)")
    p.add_argument("--opus-kbps", type=float, nargs="*", help=f"Opus's rates (default: {_rates(EVAL_OPUS_KBPS)}; none with --noise-snr)")
    p.add_argument("--weights", type=Path, help="a folder with a model's .pt/.json (default: the shipped models)")
    p.add_argument("--out", type=Path, help="folder for table.md, results.json and (without --noise-snr) plot.png")
    p.add_argument(
        "--noise-snr",
        type=float,
        nargs="+",
        help="the denoise table instead: the clips clean and mixed with noise the training never saw at these SNRs (dB), "
        "our denoise switch off and on against reference enhancers, DNSMOS included (docs/codec.md)",
    )
    p.add_argument(
        "--enhancers",
        nargs="*",
        choices=DENOISE_ENHANCERS,
        default=list(DENOISE_ENHANCERS),
        help="with --noise-snr: the reference enhancers run before our codec (default: all; none: --enhancers with no name)",
    )
    p.add_argument("--noise-music", type=Path, help="with --noise-snr: music tracks for the noise (default: the clips folder's sibling music/, if there)")
    p.add_argument("--dnsmos", action="store_true", help="add DNSMOS P.835 scores (needs the eval extra; always on with --noise-snr)")
    p.add_argument(
        "--asr",
        action="store_true",
        help="add the word error rate of a speech recogniser against its reading of the original (English clips; needs the asr extra)",
    )
    p.add_argument("--lyra-kbps", type=float, nargs="+", default=[], help="also score Lyra v2 at these of its rates (3.2, 6, 9.2)")
    p.add_argument("--lyra-models", type=Path, default=DEFAULT_LYRA_MODELS, help=f"Lyra v2's TFLite models (default: {DEFAULT_LYRA_MODELS})")
    p.set_defaults(func=cmd_eval)
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    return run_main(lambda: args.func(args), interrupted="interrupted")
