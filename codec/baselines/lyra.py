"""Lyra v2 (Google's SoundStream codec, TFLite models, Apache-2.0) as a peer to score against.

Lyra's three models are stateful streaming graphs run one 20 ms frame at a time, as its C++
library runs them: the SoundStream encoder maps 320 samples (unit floats) to 64 features, the
residual quantizer codes them with `bits / 4` of its 46 four-bit codebooks (the rest marked
-1, "absent"), and LyraGAN decodes 320 samples from the dequantized features. Any whole
number of codebooks works (0.2 kbps each, up to 9.2); Lyra's published rates are 3.2, 6 and
9.2 kbps (16, 30 and 46 codebooks). The models are not ours and are
not bundled: they live in `../shared/baselines/lyra` beside the checkout (or `--lyra-models`).
The interpreter is ai-edge-litert (the `eval` extra).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from codec.errors import CodecError

FRAME = 320  # 20 ms at 16 kHz, Lyra's internal rate
SAMPLE_RATE = 16_000
FRAMES_PER_SECOND = SAMPLE_RATE // FRAME
DEFAULT_MODELS = Path(__file__).resolve().parents[3] / "shared" / "baselines" / "lyra"
MODEL_FILES = ("soundstream_encoder.tflite", "quantizer.tflite", "lyragan.tflite")


class LyraCodec:
    """One Lyra v2 stream at one bitrate: encoder, quantizer and decoder with their state."""

    def __init__(self, kbps: float, models: Path = DEFAULT_MODELS) -> None:
        try:
            from ai_edge_litert.interpreter import Interpreter
        except ImportError as err:
            raise CodecError("Lyra needs ai-edge-litert: pip install -e '.[eval]'") from err
        missing = [name for name in MODEL_FILES if not (models / name).is_file()]
        if missing:
            raise CodecError(f"Lyra models not found in {models}: {', '.join(missing)}")

        def runner(name: str, signature: str = "serving_default"):
            return Interpreter(model_path=str(models / name), num_threads=1).get_signature_runner(signature)

        self.encoder = runner("soundstream_encoder.tflite")
        self.quantize = runner("quantizer.tflite", "encode")
        self.dequantize = runner("quantizer.tflite", "decode")
        self.decoder = runner("lyragan.tflite")
        probe = self.quantize(input_frames=np.zeros((1, 1, 64), np.float32), num_quantizers=np.array(1, np.int32))
        self.bits_per_quantizer = int(probe["output_1"])
        self.max_quantizers = probe["output_0"].shape[0]
        bits = kbps * 1000 / FRAMES_PER_SECOND
        self.quantizers = int(round(bits / self.bits_per_quantizer))
        if not 1 <= self.quantizers <= self.max_quantizers or abs(self.quantizers * self.bits_per_quantizer - bits) > 1e-6:
            step = self.bits_per_quantizer * FRAMES_PER_SECOND / 1000
            raise CodecError(
                f"Lyra codes whole {self.bits_per_quantizer}-bit codebooks a frame: {kbps:g} kbps is not a multiple of {step:g} "
                f"up to {self.max_quantizers * step:g} (its published rates: 3.2, 6, 9.2)"
            )
        self._indices = np.full((self.max_quantizers, 1, 1), -1, np.int32)  # the unused ones stay -1

    def encode(self, frame: np.ndarray) -> np.ndarray:
        """320 float32 samples -> this frame's codebook indices [quantizers]."""
        features = self.encoder(input_audio=np.ascontiguousarray(frame, np.float32)[None])["output_0"]
        indices = self.quantize(input_frames=features, num_quantizers=np.array(self.quantizers, np.int32))["output_0"]
        return indices[: self.quantizers, 0, 0].copy()

    def decode(self, indices: np.ndarray) -> np.ndarray:
        """This frame's [quantizers] indices -> 320 float32 samples."""
        self._indices[: self.quantizers, 0, 0] = indices
        features = self.dequantize(encoding_indices=self._indices)["output_0"]
        return self.decoder(input_audio=features)["output_0"][0]


def lyra_roundtrip(audio: np.ndarray, kbps: float, models: Path = DEFAULT_MODELS) -> np.ndarray:
    """Encode and decode a 16 kHz signal frame by frame; the output is as long as the input.

    LyraGAN's output lines up with its input (cross-correlation peaks at lag 0 on speech), so
    no delay is removed.
    """
    codec = LyraCodec(kbps, models)
    frames = -(-audio.size // FRAME)
    padded = np.zeros(frames * FRAME, np.float32)
    padded[: audio.size] = np.clip(audio, -1.0, 1.0)
    out = [codec.decode(codec.encode(padded[t * FRAME : (t + 1) * FRAME])) for t in range(frames)]
    return np.concatenate(out)[: audio.size]
