"""Adversarial critics after SoundStream: a multi-resolution STFT and a multi-scale waveform one.

Both are fully convolutional and return, per sub-discriminator, its logits and the feature
maps that the feature-matching loss compares.
"""

from __future__ import annotations

import torch
from torch import nn
from torch.nn import functional as F
from torch.nn.utils.parametrizations import weight_norm

Features = list[torch.Tensor]


class STFTDiscriminator(nn.Module):
    """2-D convolutions over the complex STFT (real and imaginary parts as two channels)."""

    def __init__(self, n_fft: int, channels: int = 16) -> None:
        super().__init__()
        self.n_fft = n_fft
        c = channels
        self.layers = nn.ModuleList(
            [
                weight_norm(nn.Conv2d(2, c, (3, 9), padding=(1, 4))),
                weight_norm(nn.Conv2d(c, 2 * c, (3, 9), stride=(1, 2), padding=(1, 4))),
                weight_norm(nn.Conv2d(2 * c, 4 * c, (3, 9), stride=(1, 2), padding=(1, 4))),
                weight_norm(nn.Conv2d(4 * c, 4 * c, (3, 3), padding=(1, 1))),
            ]
        )
        self.out = weight_norm(nn.Conv2d(4 * c, 1, (3, 3), padding=(1, 1)))

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, Features]:
        window = torch.hann_window(self.n_fft, device=x.device, dtype=x.dtype)
        spec = torch.stft(x, self.n_fft, self.n_fft // 4, window=window, return_complex=True)
        h = torch.stack([spec.real, spec.imag], dim=1).transpose(2, 3)  # [B, 2, time, freq]
        features = []
        for layer in self.layers:
            h = F.leaky_relu(layer(h), 0.2)
            features.append(h)
        return self.out(h), features


class WaveDiscriminator(nn.Module):
    """Strided grouped 1-D convolutions over the waveform (MelGAN's block)."""

    def __init__(self, channels: int = 16) -> None:
        super().__init__()
        c = channels
        self.layers = nn.ModuleList(
            [
                weight_norm(nn.Conv1d(1, c, 15, padding=7)),
                weight_norm(nn.Conv1d(c, 4 * c, 41, stride=4, padding=20, groups=4)),
                weight_norm(nn.Conv1d(4 * c, 8 * c, 41, stride=4, padding=20, groups=16)),
                weight_norm(nn.Conv1d(8 * c, 8 * c, 5, padding=2)),
            ]
        )
        self.out = weight_norm(nn.Conv1d(8 * c, 1, 3, padding=1))

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, Features]:
        h = x.unsqueeze(1)
        features = []
        for layer in self.layers:
            h = F.leaky_relu(layer(h), 0.2)
            features.append(h)
        return self.out(h), features


class Discriminators(nn.Module):
    """STFT critics at several resolutions plus waveform critics at 1x, 2x and 4x down-sampling."""

    def __init__(self, stft_sizes: tuple[int, ...] = (256, 512, 1024), wave_scales: int = 3, channels: int = 16) -> None:
        super().__init__()
        self.stft = nn.ModuleList(STFTDiscriminator(n, channels) for n in stft_sizes)
        self.wave = nn.ModuleList(WaveDiscriminator(channels) for _ in range(wave_scales))

    def forward(self, x: torch.Tensor) -> list[tuple[torch.Tensor, Features]]:
        outs = [d(x) for d in self.stft]
        h = x
        for i, d in enumerate(self.wave):
            if i:
                h = F.avg_pool1d(h.unsqueeze(1), 4, 2, padding=1).squeeze(1)
            outs.append(d(h))
        return outs


def discriminator_loss(real: list[tuple[torch.Tensor, Features]], fake: list[tuple[torch.Tensor, Features]]) -> torch.Tensor:
    """Hinge loss: real logits above +1, generated below -1."""
    loss = real[0][0].new_zeros(())
    for (r, _), (f, _) in zip(real, fake):
        loss = loss + F.relu(1 - r).mean() + F.relu(1 + f).mean()
    return loss / len(real)


def generator_losses(real: list[tuple[torch.Tensor, Features]], fake: list[tuple[torch.Tensor, Features]]) -> tuple[torch.Tensor, torch.Tensor]:
    """(adversarial hinge loss, feature matching: relative L1 between critics' features)."""
    adv = fake[0][0].new_zeros(())
    fm = fake[0][0].new_zeros(())
    for (_, real_feats), (f, fake_feats) in zip(real, fake):
        adv = adv + F.relu(1 - f).mean()
        for rf, ff in zip(real_feats, fake_feats):
            fm = fm + (rf.detach() - ff).abs().mean() / (rf.detach().abs().mean() + 1e-5)
    return adv / len(fake), fm / (len(fake) * len(fake[0][1]))
