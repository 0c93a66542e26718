"""The SoundStream family: a causal convolutional encoder and decoder around a residual VQ.

The shape of Lyra v2's model (`SoundStreamConfig`), which is what the shipped default carries
(weights converted by `codec.lyra_import`):

    encoder  320 samples -> Conv(1 -> 64, k 64, s 16) -> 3 residual units
             -> [LReLU, Conv(k 2s, s, groups g) -> 3 residual units] x 2 (s 5, 2)
             -> LReLU, Conv(256 -> 512, k 4, s 2, groups 4) -> LReLU, Conv(512 -> 64, k 3, groups 4)
    decoder  the mirror: Conv(64 -> 512, k 3, groups 4), then per stage LReLU,
             ConvTranspose(k 2s, s, groups g) and 3 residual units, and LReLU,
             ConvTranspose(64 -> 1, k 64, s 16) last.

A residual unit is x + Conv1x1_g(LReLU(Conv1x1(DWConv_k3,dil d(LReLU(x))))), d = 1, 3, 9.
Every convolution is causal with explicit streaming state (`codec.modules.causal_conv`), so
the same modules run a whole utterance offline or one 20 ms frame at a time, and
`codec.streaming` drives them exactly as it drives the other family.

The denoise switch (`denoise_conditioning`): the encoder alone is conditioned, on a 0/1 flag
per frame, by a `FlagGatedResidual` after each of its stages, after its last down step and on
its latent (5 points, at 1000, 200, 100, 50 and 50 steps a second). Each is the identity where
the flag is 0, so a model trained on a frozen base (`codec.train.denoise`) gives the base's
codes and audio bit for bit with the switch off; the decoder takes no flag (its `denoise`
argument is accepted and ignored), so a receiver needs nothing to play a denoised stream.
With `denoise_context_channels` the two one-step-a-frame points' adapters also see a causal
temporal context (`codec.modules.temporal_context`), which runs with the switch off too (its
state follows the signal; the output stays the base's).
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn

from codec.config import SoundStreamConfig
from codec.modules.causal_conv import CausalConv1d, CausalConvTranspose1d
from codec.modules.film import FlagGatedResidual
from codec.sequential_rvq import SequentialResidualQuantizer


class ResidualUnit(nn.Module):
    def __init__(self, channels: int, dilation: int, groups: int, slope: float) -> None:
        super().__init__()
        self.slope = slope
        self.depthwise = CausalConv1d(channels, channels, 3, dilation=dilation, groups=channels)
        self.pointwise = nn.Conv1d(channels, channels, 1)
        self.grouped = nn.Conv1d(channels, channels, 1, groups=groups)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h = self.pointwise(self.depthwise(F.leaky_relu(x, self.slope)))
        return x + self.grouped(F.leaky_relu(h, self.slope))


class _Stage(nn.Module):
    """LReLU, one resampling convolution, then residual units (the order of both halves)."""

    def __init__(self, step: nn.Module, channels: int, groups: int, cfg: SoundStreamConfig, activate_first: bool) -> None:
        super().__init__()
        self.slope = cfg.leaky_slope
        self.activate_first = activate_first
        self.step = step
        self.units = nn.ModuleList(ResidualUnit(channels, d, groups, cfg.leaky_slope) for d in cfg.dilations)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.step(F.leaky_relu(x, self.slope) if self.activate_first else x)
        for unit in self.units:
            x = unit(x)
        return x


class SoundStreamEncoder(nn.Module):
    def __init__(self, cfg: SoundStreamConfig) -> None:
        super().__init__()
        self.slope = cfg.leaky_slope
        self.hop = cfg.hop
        ch, st = cfg.channels, cfg.strides
        first = CausalConv1d(1, ch[0], cfg.first_kernel, stride=st[0])
        self.stages = nn.ModuleList([_Stage(first, ch[0], cfg.groups[0], cfg, activate_first=False)])
        for i in range(1, len(ch) - 1):
            # The step into stage i is grouped as the stage before it (1 for the first).
            step = CausalConv1d(ch[i - 1], ch[i], 2 * st[i], stride=st[i], groups=cfg.groups[i - 1])
            self.stages.append(_Stage(step, ch[i], cfg.groups[i], cfg, activate_first=True))
        self.down = CausalConv1d(ch[-2], ch[-1], 2 * st[-1], stride=st[-1], groups=cfg.groups[-1])
        self.bottleneck = CausalConv1d(ch[-1], cfg.latent_dim, cfg.bottleneck_kernel, groups=cfg.bottleneck_groups)
        # The denoise switch: one gated residual after each stage, after `down` and on the latent.
        self.conditioning: nn.ModuleList | None = None
        self.steps_per_frame: tuple[int, ...] = ()
        if cfg.denoise_conditioning:
            widths = (*ch[:-1], ch[-1], cfg.latent_dim)
            hidden = cfg.denoise_adapter_channels
            rates = [cfg.hop // math.prod(st[: i + 1]) for i in range(len(st))]
            self.steps_per_frame = (*rates, 1)
            # The temporal context serves the points of one step a frame: a few hundred ms of
            # context is a few dozen steps there, and it costs least.
            context = [cfg.denoise_context_channels if rate == 1 else 0 for rate in self.steps_per_frame]
            self.conditioning = nn.ModuleList(FlagGatedResidual(c, hidden, cfg.leaky_slope, k) for c, k in zip(widths, context))

    def _flag(self, denoise: torch.Tensor | float, samples: torch.Tensor) -> torch.Tensor | None:
        """The flag as [B, frames], or None where it is off throughout (then no layer runs)."""
        if self.conditioning is None:
            return None
        if not isinstance(denoise, torch.Tensor):
            if not denoise:
                return None
            denoise = torch.tensor(float(denoise))
        elif not bool(denoise.any()):
            return None
        batch, frames = samples.shape[0], -(-samples.shape[-1] // self.hop)
        flag = denoise.to(samples.dtype)
        return (flag[:, None] if flag.dim() == 1 else flag).expand(batch, frames)

    def _condition(self, point: int, x: torch.Tensor, flag: torch.Tensor | None) -> torch.Tensor:
        if self.conditioning is None:
            return x
        gate = self.conditioning[point]
        if flag is None:  # off throughout: only a temporal context runs (its state advances)
            return x if gate.context is None else gate(x, None)
        steps = flag.repeat_interleave(self.steps_per_frame[point], dim=-1)[:, None, : x.shape[-1]]
        return gate(x, steps)

    def forward(self, samples: torch.Tensor, denoise: torch.Tensor | float = 0.0) -> torch.Tensor:
        """samples [B, T * hop] -> latent [B, T, latent_dim]; denoise a flag (scalar, [B] or [B, T])."""
        flag = self._flag(denoise, samples)
        x = samples.unsqueeze(1)
        for i, stage in enumerate(self.stages):
            x = self._condition(i, stage(x), flag)
        x = self._condition(len(self.stages), self.down(F.leaky_relu(x, self.slope)), flag)
        latent = self._condition(len(self.stages) + 1, self.bottleneck(F.leaky_relu(x, self.slope)), flag)
        return latent.transpose(1, 2)


class SoundStreamDecoder(nn.Module):
    def __init__(self, cfg: SoundStreamConfig) -> None:
        super().__init__()
        self.slope = cfg.leaky_slope
        ch, st = cfg.channels, cfg.strides
        self.entry = CausalConv1d(cfg.latent_dim, ch[-1], cfg.bottleneck_kernel, groups=cfg.bottleneck_groups)
        self.stages = nn.ModuleList()
        for i in range(len(ch) - 1, 0, -1):
            groups = cfg.groups[i - 1]
            step = CausalConvTranspose1d(ch[i], ch[i - 1], 2 * st[i], stride=st[i], groups=groups)
            self.stages.append(_Stage(step, ch[i - 1], groups, cfg, activate_first=True))
        self.last = CausalConvTranspose1d(ch[0], 1, cfg.first_kernel, stride=st[0])

    def forward(self, latent: torch.Tensor, denoise: torch.Tensor | float = 0.0) -> torch.Tensor:
        """latent [B, T, latent_dim] -> samples [B, T * hop]."""
        x = self.entry(latent.transpose(1, 2))
        for stage in self.stages:
            x = stage(x)
        return self.last(F.leaky_relu(x, self.slope)).squeeze(1)


class SoundStreamCodec(nn.Module):
    """Encoder, quantizer and decoder with the interface of `codec.model.Codec`."""

    def __init__(self, cfg: SoundStreamConfig) -> None:
        super().__init__()
        self.cfg = cfg
        self.encoder = SoundStreamEncoder(cfg)
        self.quantizer = SequentialResidualQuantizer(cfg.latent_dim, cfg.n_quantizers, cfg.codebook_size)
        self.decoder = SoundStreamDecoder(cfg)

    def forward(
        self, samples: torch.Tensor, n_layers: torch.Tensor | None, denoise: torch.Tensor | float = 0.0
    ) -> tuple[torch.Tensor, torch.Tensor, dict[str, float]]:
        """samples [B, T * hop] -> (reconstruction, commitment loss, {}); n_layers None skips the RVQ."""
        latent = self.encoder(samples, denoise)
        if n_layers is None:
            return self.decoder(latent), latent.new_zeros(()), {}
        quantized, _, commit, stats = self.quantizer(latent, n_layers)
        return self.decoder(quantized), commit, stats

    @torch.no_grad()
    def encode(self, samples: torch.Tensor, n_layers: int, denoise: torch.Tensor | float = 0.0) -> torch.Tensor:
        """samples [B, T * hop] -> codes [B, n_layers, T]."""
        return self.quantizer.encode(self.encoder(samples, denoise), n_layers)

    @torch.no_grad()
    def decode(self, codes: torch.Tensor, layer_counts: torch.Tensor | None = None, denoise: torch.Tensor | float = 0.0) -> torch.Tensor:
        """codes [B, K, T] -> samples [B, T * hop]; layer_counts [B, T] picks stages per frame."""
        return self.decoder(self.quantizer.decode(codes, layer_counts))

    def parameter_counts(self) -> dict[str, int]:
        def count(m: nn.Module) -> int:
            return sum(p.numel() for p in m.parameters())

        codebooks = self.quantizer.codebooks.numel()
        return {"encoder": count(self.encoder), "quantizer": codebooks, "decoder": count(self.decoder), "total": count(self) + codebooks}
