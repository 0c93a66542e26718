"""Streaming speed of the shipped codec on one thread, beside libopus in the same run.

`python -m codec bench --json` prints one JSON object: encode and decode milliseconds per
20 ms frame (p50, p99) at 6 kbps, the real-time factor, parameter counts, algorithmic
latency, and Opus 6 kbps encode/decode per frame measured on the same audio.
"""

from __future__ import annotations

import time
from pathlib import Path

import numpy as np
import torch

from codec.baselines.opus import OpusCodec
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


def run_benchmark(frames: int = 500, kbps: float = 6.0, warmup: int = 20) -> dict:
    torch.set_num_threads(1)
    model, model_id = load_model()
    cfg = model.cfg
    hop = cfg.hop
    layers = cfg.layers_for_kbps(kbps)
    audio = _signal(frames + warmup, hop)
    blocks = torch.from_numpy(audio).view(-1, hop)
    enc_ms, dec_ms = [], []
    with StreamingEncoder(model) as encoder, StreamingDecoder(model) as decoder:
        for t in range(blocks.shape[0]):
            t0 = time.perf_counter()
            codes = encoder.encode(blocks[t : t + 1], layers)
            t1 = time.perf_counter()
            decoder.decode(codes)
            t2 = time.perf_counter()
            if t >= warmup:
                enc_ms.append(1000 * (t1 - t0))
                dec_ms.append(1000 * (t2 - t1))
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
    total = np.asarray(enc_ms) + np.asarray(dec_ms)
    return {
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
        "parameters": model.parameter_counts(),
        "algorithmic_latency_ms": cfg.algorithmic_latency_ms,
        "opus_encode_ms": _percentiles(opus_enc),
        "opus_decode_ms": _percentiles(opus_dec),
        "ratio_vs_opus_p50": round(float(np.percentile(total, 50)) / float(np.percentile(np.asarray(opus_enc) + np.asarray(opus_dec), 50)), 2),
    }
