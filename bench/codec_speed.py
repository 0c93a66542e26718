"""Streaming speed of the shipped codec on one thread, beside libopus and Lyra v2 in the same run.

`python -m codec bench --json` prints one JSON object: encode and decode milliseconds per
20 ms frame (p50, p99) at 6 kbps for each engine (eager PyTorch, the exported ONNX Runtime
step, and its int8 variant where the model allows it, else `onnx_int8` says why not), the
real-time factor, parameter counts, algorithmic latency, and Opus 6 kbps encode/decode per
frame measured on the same audio. Two top-level objects compare like with like:
`default` (the default model on the default engine, `codec.engine.DEFAULT_ENGINE`) and
`lyra_tflite` (Lyra v2's TFLite codec at 6 kbps, or `{"error": why}` when its models or
ai-edge-litert are missing; codec/baselines/lyra.py), each
`{"model", "engine", "encode_ms": {"p50", "p99", "mean"}, "decode_ms": {...}}`, timed frame by
frame on one thread on the same audio.
"""

from __future__ import annotations

import time
from pathlib import Path

import numpy as np
import torch

from codec.baselines.lyra import LyraCodec
from codec.baselines.opus import OpusCodec
from codec.engine import DEFAULT_ENGINE
from codec.errors import CodecError
from codec.onnx_runtime import OnnxStreamingDecoder, OnnxStreamingEncoder
from codec.streaming import StreamingDecoder, StreamingEncoder
from codec.weights import load_model

SAMPLE = Path(__file__).resolve().parents[1] / "codec" / "samples" / "speech.wav"


def _percentiles(ms: list[float]) -> dict[str, float]:
    a = np.asarray(ms)
    return {"p50": round(float(np.percentile(a, 50)), 4), "p99": round(float(np.percentile(a, 99)), 4), "mean": round(float(a.mean()), 4)}


def _signal(frames: int, hop: int) -> np.ndarray:
    from codec.audio_io import load_audio

    audio, _ = load_audio(SAMPLE, 16_000)
    reps = -(-frames * hop // audio.size)
    return np.tile(audio, reps)[: frames * hop]


def _time_pair(encode, decode, blocks, warmup: int) -> tuple[list[float], list[float]]:
    enc_ms, dec_ms = [], []
    for t in range(len(blocks)):
        t0 = time.perf_counter()
        codes = encode(blocks[t : t + 1])
        t1 = time.perf_counter()
        decode(codes)
        t2 = time.perf_counter()
        if t >= warmup:
            enc_ms.append(1000 * (t1 - t0))
            dec_ms.append(1000 * (t2 - t1))
    return enc_ms, dec_ms


def run_benchmark(frames: int = 500, kbps: float = 6.0, warmup: int = 20) -> dict:
    torch.set_num_threads(1)
    model, model_id = load_model()
    cfg = model.cfg
    hop = cfg.hop
    layers = cfg.layers_for_kbps(kbps)
    audio = _signal(frames + warmup, hop)
    blocks = torch.from_numpy(audio).view(-1, hop)
    with StreamingEncoder(model) as encoder, StreamingDecoder(model) as decoder:
        enc_ms, dec_ms = _time_pair(lambda x: encoder.encode(x, layers), decoder.decode, blocks, warmup)
    onnx_encoder, onnx_decoder = OnnxStreamingEncoder(model, model_id), OnnxStreamingDecoder(model, model_id)
    onnx_enc, onnx_dec = _time_pair(lambda x: onnx_encoder.encode(x, layers), onnx_decoder.decode, blocks.numpy(), warmup)
    try:
        int8_encoder = OnnxStreamingEncoder(model, model_id, int8=True)
        int8_decoder = OnnxStreamingDecoder(model, model_id, int8=True)
    except CodecError as err:  # int8 refused for this model (it costs quality)
        int8_error: str | None = str(err)
    else:
        int8_error = None
        int8_enc, int8_dec = _time_pair(lambda x: int8_encoder.encode(x, layers), int8_decoder.decode, blocks.numpy(), warmup)
    per_engine = {"torch": (enc_ms, dec_ms), "onnx": (onnx_enc, onnx_dec)}
    if int8_error is None:
        per_engine["onnx-int8"] = (int8_enc, int8_dec)
    opus = OpusCodec(kbps)
    opus_enc, opus_dec = [], []
    for t in range(blocks.shape[0]):
        t0 = time.perf_counter()
        packets = opus.encode(audio[t * hop : (t + 1) * hop])
        t1 = time.perf_counter()
        for p in packets:
            opus.decode(p)
        t2 = time.perf_counter()
        if t >= warmup:
            opus_enc.append(1000 * (t1 - t0))
            opus_dec.append(1000 * (t2 - t1))
    lyra = _time_lyra(blocks.numpy(), kbps, warmup)
    total = np.asarray(enc_ms) + np.asarray(dec_ms)
    onnx_total = np.asarray(onnx_enc) + np.asarray(onnx_dec)
    opus_p50 = float(np.percentile(np.asarray(opus_enc) + np.asarray(opus_dec), 50))
    result = {
        "model_id": model_id,
        "torch": torch.__version__,
        "threads": torch.get_num_threads(),
        "frames": frames,
        "frame_ms": cfg.frame_ms,
        "kbps": cfg.kbps_for_layers(layers),
        "layers": layers,
        "encode_ms": _percentiles(enc_ms),
        "decode_ms": _percentiles(dec_ms),
        "encode_decode_ms": _percentiles(list(total)),
        "real_time_factor": round(float(total.mean()) / cfg.frame_ms, 4),
        "onnx_encode_ms": _percentiles(onnx_enc),
        "onnx_decode_ms": _percentiles(onnx_dec),
        "onnx_encode_decode_ms": _percentiles(list(onnx_total)),
        "onnx_real_time_factor": round(float(onnx_total.mean()) / cfg.frame_ms, 4),
        "onnx_operators": {"encoder": onnx_encoder.part.operator_count(), "decoder": onnx_decoder.part.operator_count()},
        "onnx_int8": int8_error,
        "parameters": model.parameter_counts(),
        "algorithmic_latency_ms": cfg.algorithmic_latency_ms,
        "opus_encode_ms": _percentiles(opus_enc),
        "opus_decode_ms": _percentiles(opus_dec),
        "eager_vs_opus_p50": round(float(np.percentile(total, 50)) / opus_p50, 2),
        "onnx_vs_opus_p50": round(float(np.percentile(onnx_total, 50)) / opus_p50, 2),
        "lyra": lyra if isinstance(lyra, str) else None,
    }
    default_enc, default_dec = per_engine[DEFAULT_ENGINE]
    default_encode_decode = _percentiles(list(np.asarray(default_enc) + np.asarray(default_dec)))
    result["default"] = {
        "model": model_id,
        "engine": DEFAULT_ENGINE,
        "encode_ms": _percentiles(default_enc),
        "decode_ms": _percentiles(default_dec),
        "encode_decode_ms": default_encode_decode,
    }
    if int8_error is None:
        int8_total = np.asarray(int8_enc) + np.asarray(int8_dec)
        result["onnx_int8_encode_ms"] = _percentiles(int8_enc)
        result["onnx_int8_decode_ms"] = _percentiles(int8_dec)
        result["onnx_int8_encode_decode_ms"] = _percentiles(list(int8_total))
        result["onnx_int8_operators"] = {"encoder": int8_encoder.part.operator_count(), "decoder": int8_decoder.part.operator_count()}
        result["onnx_int8_vs_opus_p50"] = round(float(np.percentile(int8_total, 50)) / opus_p50, 2)
    if not isinstance(lyra, str):
        lyra_enc, lyra_dec = lyra
        lyra_total = np.asarray(lyra_enc) + np.asarray(lyra_dec)
        result["lyra_encode_ms"] = _percentiles(lyra_enc)
        result["lyra_decode_ms"] = _percentiles(lyra_dec)
        lyra_encode_decode = _percentiles(list(lyra_total))
        result["lyra_encode_decode_ms"] = lyra_encode_decode
        result["lyra_vs_opus_p50"] = round(float(np.percentile(lyra_total, 50)) / opus_p50, 2)
        result["lyra_tflite"] = {
            "model": "lyra-v2 (soundstream_encoder, quantizer, lyragan .tflite)",
            "engine": "tflite (ai-edge-litert, XNNPACK)",
            "encode_ms": result["lyra_encode_ms"],
            "decode_ms": result["lyra_decode_ms"],
            "encode_decode_ms": result["lyra_encode_decode_ms"],
        }
        result["default_vs_lyra_tflite_p50"] = round(default_encode_decode["p50"] / lyra_encode_decode["p50"], 2)
    else:
        result["lyra_tflite"] = {"error": lyra}
    return result


def _time_lyra(blocks: np.ndarray, kbps: float, warmup: int) -> tuple[list[float], list[float]] | str:
    """Lyra v2's encode (encoder + quantizer) and decode (dequantizer + LyraGAN) per frame,
    or the reason it cannot run here."""
    try:
        lyra = LyraCodec(kbps)
    except CodecError as err:
        return str(err)
    return _time_pair(lambda x: lyra.encode(x[0]), lyra.decode, blocks, warmup)
