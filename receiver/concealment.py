"""What to play for a frame that did not arrive in time: two concealers, one interface.

Both drive the frame decoder themselves (`received` for a frame that came, `missing` for one
that did not), so the decoder's state follows what was played:

- `RepeatConcealer` ("repeat"): the last frame's codes again, faded by `fade` per frame (the
  decoder's state stays continuous and the voice decays rather than clicking to silence);
  after `max_repeats` frames, comfort noise at -60 dBFS (the decoder not fed) until frames return.
- `NeuralConcealer` ("neural"): the latent predictor (`codec.concealment`) guesses the missing
  frame's latent from those played before; the decoder decodes it, and the guess is fed back for
  the next one. Over a burst the output is faded towards comfort noise, `fade` a frame after
  `hold` frames (both measured: `python -m bench.concealment --tune data`, docs/concealment.md);
  once the fade is inaudible the decoder is no longer fed. The gain moves as a ramp within each
  frame, and the first real frame after a gap ramps back up from where the fade was, so neither
  the gap nor the return clicks. When the playout buffer already holds a later frame, the guess
  aims at it (`StreamingPredictor.refine`): a step along the straight line to that frame's
  latent (halfway for the next frame, a third for the one after), or a trained refiner's
  correction of that step. Figures: docs/concealment.md ("Aiming at later frames").
"""

from __future__ import annotations

import argparse
from typing import TYPE_CHECKING, Literal, Protocol

import numpy as np

if TYPE_CHECKING:
    from codec.concealment import StreamingPredictor
    from codec.engine import FrameDecoder

ConcealmentName = Literal["repeat", "neural"]
CONCEALMENTS: tuple[str, ...] = ("repeat", "neural")
DEFAULT_CONCEALMENT: ConcealmentName = "neural"  # ahead or level offline and on replayed calls (docs/concealment.md)
# From `python -m bench.concealment --tune data` (docs/concealment.md).
NEURAL_FADE = 0.9
NEURAL_HOLD = 0
# The codecs whose decoder takes the latents the shipped predictor was trained on (lyra2x is
# Lyra's encoder and decoder with more quantizer stages, lyra2xd lyra2x with a denoise switch
# in its encoder: the same decoder, the same latent space).
NEURAL_MODELS = ("soundstream16k-lyra2", "soundstream16k-lyra2x", "soundstream16k-lyra2xd")
_SILENT_GAIN = 0.01  # below this the decoded guess is not worth its decoding: comfort noise only


class FrameConcealer(Protocol):
    def received(self, decoder: FrameDecoder, codes: np.ndarray) -> np.ndarray:
        """A frame's codes [layers] arrived: decode them (the samples are played, or dropped for a skipped frame)."""

    def missing(self, decoder: FrameDecoder, following: np.ndarray | None = None, distance: int = 1) -> np.ndarray:
        """No frame: the samples to play instead. `following`: the codes [layers] of a later
        frame already here, `distance` frames on (1: the next), which a concealer may aim at."""


class _ComfortNoise:
    def __init__(self, hop: int, seed: int) -> None:
        self.hop = hop
        self._rng = np.random.default_rng(seed)

    def __call__(self) -> np.ndarray:
        return (self._rng.standard_normal(self.hop) * 1e-3).astype(np.float32)


class RepeatConcealer:
    def __init__(self, hop: int, fade: float = 0.6, max_repeats: int = 4, seed: int = 0) -> None:
        self.hop = hop
        self.fade = fade
        self.max_repeats = max_repeats
        self.run = 0  # consecutive concealed frames
        self.comfort_noise = _ComfortNoise(hop, seed)
        self.last_codes: np.ndarray | None = None

    def received(self, decoder: FrameDecoder, codes: np.ndarray) -> np.ndarray:
        self.last_codes = codes
        self.run = 0
        return decoder.decode(codes[:, None])

    def missing(self, decoder: FrameDecoder, following: np.ndarray | None = None, distance: int = 1) -> np.ndarray:
        self.run += 1
        if self.last_codes is None or self.run > self.max_repeats:
            return self.comfort_noise()
        return self.fade**self.run * decoder.decode(self.last_codes[:, None])


class NeuralConcealer:
    def __init__(
        self, hop: int, predictor: StreamingPredictor, table: np.ndarray, codebook_size: int, fade: float = NEURAL_FADE, hold: int = NEURAL_HOLD, seed: int = 0
    ) -> None:
        """`table` [stages * codebook_size, D]: the quantizer's codewords, stage after stage
        (codes -> latent, as `codec.onnx_runtime.OnnxStreamingDecoder` sums them)."""
        self.hop = hop
        self.predictor = predictor
        self.table = np.asarray(table, np.float32)
        self.codebook_size = codebook_size
        self._offsets = np.arange(self.table.shape[0] // codebook_size) * codebook_size  # each stage's first row in `table`
        self.fade = fade
        self.hold = hold
        self.run = 0
        self.comfort_noise = _ComfortNoise(hop, seed)
        predictor.reset()
        self._guess: np.ndarray | None = None  # the next frame's predicted latent [D]
        self._gain = 1.0  # at the end of the last frame played
        self._ramp = np.arange(1, hop + 1, dtype=np.float32) / hop

    def _ramped(self, audio: np.ndarray, gain: float) -> np.ndarray:
        start, self._gain = self._gain, gain
        if start == gain == 1.0:
            return audio
        return audio * (start + (gain - start) * self._ramp)

    def _latent(self, codes: np.ndarray) -> np.ndarray:
        """codes [layers] -> the quantized latent [D] the decoder would see."""
        return self.table[codes + self._offsets[: codes.shape[0]]].sum(0, dtype=np.float32)

    def received(self, decoder: FrameDecoder, codes: np.ndarray) -> np.ndarray:
        self._guess = self.predictor.step(self._latent(codes), False)
        self.run = 0
        return self._ramped(decoder.decode(codes[:, None]), 1.0)

    def missing(self, decoder: FrameDecoder, following: np.ndarray | None = None, distance: int = 1) -> np.ndarray:
        self.run += 1
        gain = self.fade ** max(0, self.run - self.hold)
        if self._guess is None or max(gain, self._gain) < _SILENT_GAIN:
            self._gain = 0.0  # nothing to continue from, or faded out: a return ramps up from silence
            return self.comfort_noise()
        guess = self._guess
        later = None if following is None else self._latent(following)
        guess = self.predictor.refine(guess, later, distance)  # aimed at where playback resumes, if known
        audio = decoder.decode_latent(guess)
        self._guess = self.predictor.step(guess, True)
        return self._ramped(audio, gain) + (1.0 - gain) * self.comfort_noise()


def concealment_option() -> argparse.ArgumentParser:
    """`--concealment repeat|neural`, as an argparse parent."""
    p = argparse.ArgumentParser(add_help=False)
    p.add_argument(
        "--concealment",
        choices=CONCEALMENTS,
        default=DEFAULT_CONCEALMENT,
        help=f"what plays for a lost frame: the last frame repeated, or the latent predictor's guess (default {DEFAULT_CONCEALMENT})",
    )
    return p


def neural_predictor(name: str, model=None) -> StreamingPredictor | None:
    """The shipped latent predictor when concealment `name` is "neural" and `model` decodes the
    latent space it was trained on (Lyra's); None otherwise (`ssc16k`, no model, "repeat")."""
    if name != "neural" or model is None or model.cfg.name not in NEURAL_MODELS:
        return None
    from codec.concealment import StreamingPredictor, load_predictor

    return StreamingPredictor(load_predictor())


def make_concealer(name: str, hop: int, model=None) -> FrameConcealer:
    """`name` from CONCEALMENTS; "neural" needs the codec model (its quantizer's codewords) and
    loads the shipped predictor, which knows only Lyra's latent space: for another model
    (`ssc16k`), or without a model, it falls back to "repeat"."""
    if name not in CONCEALMENTS:
        raise ValueError(f"unknown concealment {name!r} (choose from {', '.join(CONCEALMENTS)})")
    predictor = neural_predictor(name, model)
    if predictor is None:
        return RepeatConcealer(hop)
    return NeuralConcealer(hop, predictor, model.quantizer.table.detach().numpy(), model.cfg.codebook_size)
