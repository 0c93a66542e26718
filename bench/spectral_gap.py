"""Where the PESQ gap is: `python -m bench.spectral_gap [FOLDER] [--weights DIR] [--layers N] [--lyra KBPS]`.

Decodes each clip of FOLDER (default `../shared/dev-clips/speech`) through N RVQ layers
(default 12, 6 kbps) offline, then swaps magnitude and phase between input and output in one
STFT (Hann 512, hop 128) and scores each hybrid with PESQ-WB against the input:

- the decoded magnitude with the input's phase: what a perfect phase would buy;
- the input's magnitude with the decoded phase: what a perfect magnitude would buy;
- the input through the same STFT and inverse: the analysis's own ceiling;
- the decoded output with every bin above 7 kHz zeroed: what the excess energy there costs.

A second table compares, per 1 kHz band over active frames, the level bias (decoded - input, dB)
and the harmonic contrast (mean |log-magnitude - its 9-bin local mean| along frequency, dB):
a smeared, noise-filled harmonic structure shows as lower contrast than the input's. About
20 seconds on 7 clips. `--lyra KBPS` runs the same analysis on Lyra v2 (codec/baselines/lyra.py)
instead of our model: a GAN-trained SoundStream, for what its numbers look like.
"""

from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np
import torch
from pesq import pesq
from torch.nn import functional as F

from codec.audio_io import load_audio
from codec.baselines.lyra import lyra_roundtrip
from codec.command_line import model_option
from codec.markdown_table import MarkdownTable
from codec.train.evaluate import clip_paths
from codec.weights import load_model

DEV_CLIPS = Path(__file__).resolve().parents[2] / "shared" / "dev-clips" / "speech"
N_FFT = 512
HOP = 128
BAND_HZ = 1000
ACTIVE_DB = -30.0  # frames within 30 dB of the clip's loudest count as active
LOW_PASS_HZ = 7000
HYBRIDS = (
    "decoded",
    "decoded magnitude, input phase",
    "input magnitude, decoded phase",
    "input through the STFT",
    f"decoded, nothing above {LOW_PASS_HZ // 1000} kHz",
)


def _stft(x: torch.Tensor) -> torch.Tensor:
    return torch.stft(x, N_FFT, HOP, window=torch.hann_window(N_FFT), return_complex=True)


def _istft(spec: torch.Tensor, length: int) -> np.ndarray:
    return torch.istft(spec, N_FFT, HOP, window=torch.hann_window(N_FFT), length=length).numpy()


def hybrids(x: torch.Tensor, y: torch.Tensor, sample_rate: int = 16000) -> dict[str, np.ndarray]:
    """The signals of the first table, each as long as x."""
    sx, sy = _stft(x), _stft(y)
    n = len(x)
    cut = int(LOW_PASS_HZ * N_FFT / sample_rate)
    return {
        HYBRIDS[0]: y.numpy(),
        HYBRIDS[1]: _istft(sy.abs() * torch.exp(1j * sx.angle()), n),
        HYBRIDS[2]: _istft(sx.abs() * torch.exp(1j * sy.angle()), n),
        HYBRIDS[3]: _istft(sx, n),
        HYBRIDS[4]: _istft(torch.cat([sy[:cut], torch.zeros_like(sy[cut:])]), n),
    }


def band_profile(x: torch.Tensor, y: torch.Tensor, sample_rate: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Per-bin level bias, input contrast and decoded contrast (dB) over x's active frames."""
    mx, my = _stft(x).abs(), _stft(y).abs()
    energy = (mx**2).sum(0)
    active = energy > energy.max() * 10 ** (ACTIVE_DB / 10)
    lx = 20 * torch.log10(mx[:, active] + 1e-6)
    ly = 20 * torch.log10(my[:, active] + 1e-6)

    def contrast(level: torch.Tensor) -> torch.Tensor:
        local = F.avg_pool1d(level.T[:, None], 9, 1, 4, count_include_pad=False)[:, 0].T
        return (level - local).abs().mean(1)

    return (ly - lx).mean(1).numpy(), contrast(lx).numpy(), contrast(ly).numpy()


def main() -> None:
    parser = argparse.ArgumentParser(prog="python -m bench.spectral_gap", description=__doc__.split("\n")[0], parents=[model_option()])
    parser.add_argument("folder", type=Path, nargs="?", default=DEV_CLIPS)
    parser.add_argument("--weights", type=Path, default=None, help="a weights folder (default: the shipped models)")
    parser.add_argument("--layers", type=int, default=12)
    parser.add_argument("--lyra", type=float, metavar="KBPS", help="analyse Lyra v2 at this rate instead of our model")
    args = parser.parse_args()
    torch.set_num_threads(1)
    model, model_id = load_model(args.weights, args.model)
    model.eval()
    rate, hop = model.cfg.sample_rate, model.cfg.hop
    scores: dict[str, list[float]] = {name: [] for name in HYBRIDS}
    profiles = []
    for path in clip_paths(args.folder):
        audio, _ = load_audio(path, rate)
        x = torch.from_numpy(np.ascontiguousarray(audio[: len(audio) // hop * hop], dtype=np.float32))
        if args.lyra is not None:
            y = torch.from_numpy(lyra_roundtrip(x.numpy(), args.lyra))
        else:
            with torch.no_grad():
                quantized = model.quantizer(model.encoder(x[None], 0.0), torch.full((1,), args.layers))[0]
                y = model.decoder(quantized, 0.0)[0]
        for name, signal in hybrids(x, y, rate).items():
            scores[name].append(pesq(rate, x.numpy(), signal.astype(np.float32), "wb"))
        profiles.append(band_profile(x, y, rate))
    coded = f"Lyra v2 at {args.lyra:g} kbps" if args.lyra is not None else f"{model_id}, {args.layers} layers"
    print(f"{coded}, {len(profiles)} clips of {args.folder}\n")
    print(MarkdownTable(["signal", "PESQ-WB"]).render([name, f"{np.mean(values):.2f}"] for name, values in scores.items()))
    bias, contrast_in, contrast_decoded = (np.mean([p[i] for p in profiles], axis=0) for i in range(3))
    bins_per_band = BAND_HZ * N_FFT // rate
    bands = []
    for lo in range(0, N_FFT // 2, bins_per_band):
        band = slice(lo, lo + bins_per_band)
        khz = lo * rate / N_FFT / 1000
        bands.append(
            [f"{khz:g}-{khz + BAND_HZ / 1000:g}", f"{bias[band].mean():+.1f}", f"{contrast_in[band].mean():.1f}", f"{contrast_decoded[band].mean():.1f}"]
        )
    print()
    print(MarkdownTable(["band kHz", "level bias dB", "contrast input dB", "contrast decoded dB"]).render(bands))


if __name__ == "__main__":
    main()
