"""Which layers take int8 weights without losing quality: `python -m bench.int8_layers`.

Streams the bundled sample through the ONNX Runtime engine at 12 layers with int8 weights
(dynamic, per output channel) in different parts of the model, and prints a markdown table of
PESQ-WB and log-mel distance against the input. Behind the choice in codec/onnx_runtime.py
(docs/codec.md, "Engines"). About a minute.
"""

from __future__ import annotations

import tempfile
from pathlib import Path

import numpy as np

from codec import onnx_runtime
from codec.audio_io import load_audio
from codec.markdown_table import MarkdownTable
from codec.train.evaluate import metrics
from codec.weights import load_model

SAMPLE = Path(__file__).resolve().parents[1] / "codec" / "samples" / "speech.wav"


def _matrices(path: Path) -> list[str]:
    import onnx

    return [n.name for n in onnx.load(str(path)).graph.node if n.op_type in ("MatMul", "Gemm")]


def main() -> None:
    from onnxruntime.quantization import QuantType, quantize_dynamic

    model, model_id = load_model(name="ssc16k")  # the ssc family's int8 layers (the default model runs in float)
    audio, _ = load_audio(SAMPLE, model.cfg.sample_rate)
    hop = model.cfg.hop
    frames = audio[: audio.size // hop * hop].astype(np.float32).reshape(-1, hop)
    encoder, decoder = onnx_runtime.OnnxStreamingEncoder(model, model_id), onnx_runtime.OnnxStreamingDecoder(model, model_id)
    float_enc, float_dec = encoder.part.sessions[0.0], decoder.part.sessions[0.0]
    cache = onnx_runtime._cache_dir(model_id)
    dec_matrices = _matrices(cache / "decoder_b1_d0.onnx")
    trunk = [n for n in dec_matrices if "/blocks." in n and "/pw" in n]
    variants: dict[str, tuple[list[str] | None, list[str] | None]] = {  # (encoder, decoder) nodes to leave float; None: all float
        "nothing (float32)": (None, None),
        "everything": ([], []),
        "encoder only": ([], None),
        "decoder only": (None, []),
        "decoder without its last 8 matrices": (None, dec_matrices[-8:]),
        "decoder trunk's pointwise layers only": (None, [n for n in dec_matrices if n not in trunk]),
        "encoder + decoder trunk, stages' convolutions float (the engine)": ([], onnx_runtime._int8_sensitive(cache / "decoder_b1_d0.onnx")),
    }
    table = MarkdownTable(["int8 where", "PESQ-WB", "mel dist"])
    print(table.head())
    with tempfile.TemporaryDirectory() as tmp:
        for k, (label, (enc_keep, dec_keep)) in enumerate(variants.items()):
            for part, keep, default in ((encoder, enc_keep, float_enc), (decoder, dec_keep, float_dec)):
                if keep is None:
                    part.part.sessions = {0.0: default}
                    continue
                name = "encoder" if part is encoder else "decoder"
                out = Path(tmp) / f"{name}{k}.onnx"
                quantize_dynamic(str(cache / f"{name}_b1_d0.onnx"), str(out), weight_type=QuantType.QInt8, per_channel=True, nodes_to_exclude=keep)
                part.part.sessions = {0.0: onnx_runtime._session(out)}
            encoder.reset()
            decoder.reset()
            out_audio = np.concatenate([decoder.decode(encoder.encode(f[None], 12))[0] for f in frames])
            m = metrics(frames.reshape(-1), out_audio)
            print(table.row([label, f"{m['pesq_wb']:.2f}", f"{m['mel_distance']:.3f}"]), flush=True)


if __name__ == "__main__":
    main()
