"""What the browser page needs to run the codec itself: the streaming graphs, the codebooks, a manifest.

The page (web/static/) runs the same ONNX streaming step as the native engine
(`codec.onnx_runtime`, its graphs as cached there) in onnxruntime-web, with every state
tensor passed in and out as here. The soundstream family's residual VQ runs outside the
graph (NumPy natively), so the page runs it in JavaScript: the codebooks travel as one
float32 little-endian table [n_quantizers * codebook_size, latent_dim], stage by stage.

Only the soundstream family: the `ssc` family's analysis (framing, window, FFT) also runs
outside its graph, and the page does not do it.
"""

from __future__ import annotations

import json
from dataclasses import dataclass

import numpy as np

from codec.errors import CodecError
from codec.weights import AnyCodec

MANIFEST_VERSION = 1


@dataclass(frozen=True)
class WebModel:
    """The files the page fetches from `/model/`, as bytes."""

    manifest: bytes  # JSON, see `export_web_model`
    encoder: bytes  # ONNX: x [1, hop] + states -> y [1, 1, D] + new states
    decoder: bytes  # ONNX: x [1, 1, D] + states -> y [1, hop] + new states
    codebooks: bytes  # float32 LE [n_quantizers * codebook_size, D]

    def files(self) -> dict[str, tuple[bytes, str]]:
        """name -> (body, content type)"""
        return {
            "manifest.json": (self.manifest, "application/json"),
            "encoder.onnx": (self.encoder, "application/octet-stream"),
            "decoder.onnx": (self.decoder, "application/octet-stream"),
            "codebooks.bin": (self.codebooks, "application/octet-stream"),
        }


def export_web_model(model: AnyCodec, model_id: str, layers: int) -> WebModel:
    """Export (or take from the cache) both streaming graphs; `layers`: what the page sends by default."""
    from codec.onnx_runtime import OnnxStreamingDecoder, OnnxStreamingEncoder

    cfg = model.cfg
    if cfg.family != "soundstream":
        raise CodecError(f"{cfg.name}: the browser page runs the soundstream family only (this model analyses its input outside the graph)")
    encoder = OnnxStreamingEncoder(model, model_id)
    decoder = OnnxStreamingDecoder(model, model_id)
    table = np.ascontiguousarray(decoder.table, dtype="<f4")
    manifest = {
        "version": MANIFEST_VERSION,
        "model_id": model_id,
        "sample_rate": cfg.sample_rate,
        "hop": cfg.hop,
        "frame_ms": cfg.frame_ms,
        "n_quantizers": cfg.n_quantizers,
        "codebook_size": cfg.codebook_size,
        "bits_per_code": cfg.bits_per_code,
        "latent_dim": cfg.latent_dim,
        "layers": layers,
        # State tensors in input order (state0, state1, ...), zeros at a fresh stream.
        "encoder_states": [list(s.shape) for s in encoder.part.states],
        "decoder_states": [list(s.shape) for s in decoder.part.states],
    }
    return WebModel(
        manifest=json.dumps(manifest).encode(),
        encoder=encoder.part.paths[0.0].read_bytes(),
        decoder=decoder.part.paths[0.0].read_bytes(),
        codebooks=table.tobytes(),
    )
