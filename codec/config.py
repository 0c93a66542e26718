"""The codec's hyper-parameters: one pydantic model, saved beside the weights."""

from __future__ import annotations

import hashlib
import math
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, SerializerFunctionWrapHandler, model_serializer, model_validator


class _FramedCodecConfig(BaseModel):
    """What every model family shares: framing, the quantizer's shape, and the rates they imply.

    The call stack, bitstream and engines read only these fields and properties, so they
    work with any family; the family's own fields shape its layers."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    name: str
    sample_rate: int = 16_000
    hop: int = 320
    latent_dim: int = 64
    n_quantizers: int
    codebook_size: int
    denoise_conditioning: bool = False
    # The fewest stages worth sending: rate control packs more frames a packet rather than
    # go below it (a measured property of the model, see docs/models.md).
    min_useful_stages: int = 1

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


class CodecConfig(_FramedCodecConfig):
    """Shape of a SoundStream-style codec with a frame-rate trunk.

    Framing: `hop` samples per frame at `sample_rate`. The encoder analyses a window of
    `analysis_window` samples ending at the current frame's last sample (so it looks only
    at the past); the decoder up-samples by `upsample_factors` and each finest step emits
    its samples plus `synthesis_overlap` cross-faded into the next step, which the next
    frame completes. Algorithmic latency is therefore one frame.
    """

    family: Literal["ssc"] = "ssc"
    name: str = "ssc16k"
    analysis_window: int = 640
    synthesis_overlap: int = 10

    channels: int = 192
    hidden_mult: int = 3
    kernel_size: int = 7
    encoder_blocks: int = 4
    decoder_blocks: int = 8
    upsample_factors: tuple[int, ...] = (4, 4)
    upsample_channels: tuple[int, ...] = (96, 48)
    upsample_blocks: int = 2

    n_quantizers: int = 24
    codebook_size: int = 1024

    denoise_conditioning: bool = True

    @model_validator(mode="after")
    def _check(self) -> "CodecConfig":
        if self.codebook_size & (self.codebook_size - 1) or not 256 <= self.codebook_size <= 65536:
            # 8..16 bits a code: a payload's length then tells its layer count (see bitstream).
            raise ValueError("codebook_size must be a power of two from 256 to 65536")
        if self.analysis_window < self.hop or self.analysis_window % self.hop:
            raise ValueError("analysis_window must be a whole number of hops")
        if len(self.upsample_factors) != len(self.upsample_channels):
            raise ValueError("upsample_factors and upsample_channels must have the same length")
        if self.hop % math.prod(self.upsample_factors):
            raise ValueError("hop must be divisible by the product of upsample_factors")
        if not 0 <= self.synthesis_overlap < self.hop // math.prod(self.upsample_factors):
            raise ValueError("synthesis_overlap must be shorter than one output step")
        return self


class SoundStreamConfig(_FramedCodecConfig):
    """A SoundStream of Lyra v2's shape: strided causal convolutions down to one latent a frame
    and transposed ones back up, residual units of (depthwise dilated conv, pointwise conv,
    grouped pointwise conv) between them, LeakyReLU throughout, no normalization. The
    residual VQ has many small codebooks (46 of 16 codes: 0.2 kbps a stage)."""

    family: Literal["soundstream"] = "soundstream"
    name: str = "soundstream16k"
    channels: tuple[int, ...] = (64, 128, 256, 512)  # after the first conv, then each down step
    strides: tuple[int, ...] = (16, 5, 2, 2)  # first conv, then the down steps (product = hop)
    first_kernel: int = 64
    groups: tuple[int, ...] = (1, 2, 4)  # of each residual stage's grouped convs (and the step after it)
    dilations: tuple[int, ...] = (1, 3, 9)
    bottleneck_kernel: int = 3
    bottleneck_groups: int = 4
    leaky_slope: float = 0.3
    n_quantizers: int = 46
    codebook_size: int = 16
    min_useful_stages: int = 8  # Lyra v2's weights: unusable below 8 stages (1.6 kbps; docs/models.md)
    # The denoise switch's adapters (`codec.modules.film.FlagGatedResidual`): hidden channels
    # of each; 0 leaves per-channel FiLM alone. Only with denoise_conditioning.
    denoise_adapter_channels: int = 0
    # Channels of the switch's causal temporal context at its one-step-a-frame points (after the
    # last down step, on the latent: `codec.modules.temporal_context`); 0: none, the switch
    # stays pointwise. Needs the adapters, which it feeds.
    denoise_context_channels: int = 0

    @model_validator(mode="after")
    def _check(self) -> "SoundStreamConfig":
        if math.prod(self.strides) != self.hop:
            raise ValueError("the strides must multiply to the hop")
        if not len(self.channels) == len(self.strides) == len(self.groups) + 1:
            raise ValueError("channels and strides need one entry more than groups")
        if self.codebook_size & (self.codebook_size - 1) or not 2 <= self.codebook_size <= 65536:
            raise ValueError("codebook_size must be a power of two from 2 to 65536")
        if self.denoise_adapter_channels < 0 or (self.denoise_adapter_channels and not self.denoise_conditioning):
            raise ValueError("denoise_adapter_channels must be 0, or positive with denoise_conditioning")
        if self.denoise_context_channels < 0 or (self.denoise_context_channels and not self.denoise_adapter_channels):
            raise ValueError("denoise_context_channels must be 0, or positive with denoise_adapter_channels")
        return self

    @model_serializer(mode="wrap")
    def _without_unused_adapters(self, handler: SerializerFunctionWrapHandler) -> dict[str, Any]:
        """Models without adapters save the config they saved before the field existed, byte for
        byte (`import-lyra` reproduces the shipped file; model ids stay)."""
        data = handler(self)
        if not self.denoise_adapter_channels:
            data.pop("denoise_adapter_channels", None)
        if not self.denoise_context_channels:
            data.pop("denoise_context_channels", None)
        return data


AnyCodecConfig = CodecConfig | SoundStreamConfig


def parse_config(data: dict[str, Any]) -> AnyCodecConfig:
    """A saved config, of whichever family it names (configs saved before families were `ssc`)."""
    family = data.get("family", "ssc")
    if family == "soundstream":
        return SoundStreamConfig.model_validate(data)
    if family == "ssc":
        return CodecConfig.model_validate(data)
    raise ValueError(f"unknown model family {family!r}")
