"""What the browser page needs to run the codec itself: the streaming graphs, the codebooks, a manifest.

The page (web/static/) runs the same ONNX streaming step as the native engine
(`codec.onnx_runtime`, its graphs as cached there) in onnxruntime-web, with every state
tensor passed in and out as here. The soundstream family's residual VQ runs outside the
graph (NumPy natively), so the page runs it in JavaScript: the codebooks travel as one
float32 little-endian table [n_quantizers * codebook_size, latent_dim], stage by stage.

Only the soundstream family: the `ssc` family's analysis (framing, window, FFT) also runs
outside its graph, and the page does not do it.

With a latent predictor (the receiver's neural concealer, `codec.concealment`), its one-layer
GRU and its guess refiner travel as `predictor.bin` (float32 LE, `pack_predictor`'s order) and
the manifest's `predictor` entry gives their sizes and the concealer's fade: the page conceals
as the Python receiver does (web/static/conceal.js).
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import TYPE_CHECKING

import numpy as np

from codec.errors import CodecError
from codec.weights import AnyCodec

if TYPE_CHECKING:
    from codec.concealment import StreamingPredictor

MANIFEST_VERSION = 1


@dataclass(frozen=True)
class WebModel:
    """The files the page fetches from `/model/`, as bytes."""

    manifest: bytes  # JSON, see `export_web_model`
    encoder: bytes  # ONNX: x [1, hop] + states -> y [1, 1, D] + new states
    decoder: bytes  # ONNX: x [1, 1, D] + states -> y [1, hop] + new states
    codebooks: bytes  # float32 LE [n_quantizers * codebook_size, D]
    predictor: bytes | None = None  # float32 LE, `pack_predictor`; None: the page repeats the last latent

    def files(self) -> dict[str, tuple[bytes, str]]:
        """name -> (body, content type)"""
        files = {
            "manifest.json": (self.manifest, "application/json"),
            "encoder.onnx": (self.encoder, "application/octet-stream"),
            "decoder.onnx": (self.decoder, "application/octet-stream"),
            "codebooks.bin": (self.codebooks, "application/octet-stream"),
        }
        if self.predictor is not None:
            files["predictor.bin"] = (self.predictor, "application/octet-stream")
        return files


@dataclass(frozen=True)
class PageConcealment:
    """The receiver's neural concealer, for the page: its predictor, and the fade a frame after
    `hold` lost frames (`receiver.concealment`'s NEURAL_FADE and NEURAL_HOLD)."""

    predictor: StreamingPredictor
    fade: float
    hold: int


def pack_predictor(predictor: StreamingPredictor) -> bytes:
    """The predictor's arrays in the order web/static/predictor.js reads them: mean [D], scale [D],
    the input weights [3H, D] (row-major), the flag's column [3H], input bias [3H], recurrent
    weights [3H, H], recurrent bias [3H], the head [D, H], its bias [D]; then, with a refiner of
    width R, its inner layer's columns for the state [R, H], the guess [R, D], the later frame
    [R, D] and the distance [R, reach + 1], its bias [R], the output layer [D, R], its bias [D]."""
    p = predictor
    parts = [p.mean, p.scale, p.w_latent, p.w_flag, p.b_ih, p.w_hh, p.b_hh, p.w_out, p.b_out]
    if p.has_refiner:
        parts += [p.w_state, p.w_guess, p.w_later, p.w_where, p.b_inner, p.w_refined, p.b_refined]
    return b"".join(np.ascontiguousarray(a, dtype="<f4").tobytes() for a in parts)


def _predictor_entry(concealment: PageConcealment) -> dict:
    p = concealment.predictor
    refiner = p.b_inner.size if p.has_refiner else 0
    return {"hidden": p.hidden, "refiner": refiner, "reach": p.reach, "fade": concealment.fade, "hold": concealment.hold}


def export_web_model(model: AnyCodec, model_id: str, layers: int, concealment: PageConcealment | None = None) -> WebModel:
    """Export (or take from the cache) both streaming graphs; `layers`: what the page sends by
    default; `concealment`: the neural concealer for the page (None: it repeats the last latent)."""
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
        "predictor": None if concealment is None else _predictor_entry(concealment),
    }
    return WebModel(
        manifest=json.dumps(manifest).encode(),
        encoder=encoder.part.paths[0.0].read_bytes(),
        decoder=decoder.part.paths[0.0].read_bytes(),
        codebooks=table.tobytes(),
        predictor=None if concealment is None else pack_predictor(concealment.predictor),
    )
