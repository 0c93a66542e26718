"""The codec's hyper-parameters: one pydantic model, saved beside the weights."""

from __future__ import annotations

import hashlib
import math

from pydantic import BaseModel, ConfigDict, model_validator


class CodecConfig(BaseModel):
    """Shape of a SoundStream-style codec with a frame-rate trunk.

    Framing: `hop` samples per frame at `sample_rate`. The encoder analyses a window of
    `analysis_window` samples ending at the current frame's last sample (so it looks only
    at the past); the decoder synthesises `hop + synthesis_overlap` samples per frame and
    cross-fades the overlap with the next frame. Algorithmic latency is therefore one frame.
    """

    model_config = ConfigDict(extra="forbid", frozen=True)

    name: str = "ssc16k"
    sample_rate: int = 16_000
    hop: int = 320
    analysis_window: int = 640
    synthesis_overlap: int = 64

    channels: int = 192
    hidden_mult: int = 3
    kernel_size: int = 7
    encoder_blocks: int = 4
    decoder_blocks: int = 8
    latent_dim: int = 96

    n_quantizers: int = 36
    codebook_size: int = 1024
    codebook_dim: int = 16

    denoise_conditioning: bool = True

    @model_validator(mode="after")
    def _check(self) -> "CodecConfig":
        if self.codebook_size & (self.codebook_size - 1) or not 256 <= self.codebook_size <= 65536:
            # 8..16 bits a code: a payload's length then tells its layer count (see bitstream).
            raise ValueError("codebook_size must be a power of two from 256 to 65536")
        if self.analysis_window < self.hop or self.analysis_window % self.hop:
            raise ValueError("analysis_window must be a whole number of hops")
        if not 0 <= self.synthesis_overlap < self.hop:
            raise ValueError("synthesis_overlap must be in [0, hop)")
        return self

    @property
    def frame_rate(self) -> float:
        return self.sample_rate / self.hop

    @property
    def frame_ms(self) -> float:
        return 1000.0 * self.hop / self.sample_rate

    @property
    def bits_per_code(self) -> int:
        return int(math.log2(self.codebook_size))

    @property
    def bps_per_layer(self) -> float:
        return self.bits_per_code * self.frame_rate

    @property
    def algorithmic_latency_ms(self) -> float:
        """One frame must be captured before it can be encoded; decoding adds none."""
        return self.frame_ms

    def layers_for_kbps(self, kbps: float) -> int:
        """The largest layer count whose payload bitrate fits `kbps` (at least 1)."""
        layers = int(math.floor(kbps * 1000.0 / self.bps_per_layer + 1e-9))
        return max(1, min(self.n_quantizers, layers))

    def kbps_for_layers(self, layers: int) -> float:
        return layers * self.bps_per_layer / 1000.0

    def fingerprint(self) -> str:
        return hashlib.sha256(self.model_dump_json().encode()).hexdigest()[:12]

