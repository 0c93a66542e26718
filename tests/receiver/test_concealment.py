"""The concealers' decisions, without sockets: what each decodes and plays for lost frames."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from codec.concealment import LatentPredictor, PredictorConfig, StreamingPredictor
from receiver.concealment import NeuralConcealer, RepeatConcealer, make_concealer

HOP, D, STAGES, SIZE = 8, 4, 3, 5


class FakeDecoder:
    """Decodes codes to ones and a latent to twos (so a test sees what was decoded), and records it."""

    def __init__(self) -> None:
        self.fed: list[tuple[str, np.ndarray]] = []

    def decode(self, codes: np.ndarray, denoise: float = 0.0) -> np.ndarray:
        self.fed.append(("codes", codes))
        return np.ones(HOP * codes.shape[1], np.float32)

    def decode_latent(self, latent: np.ndarray, denoise: float = 0.0) -> np.ndarray:
        self.fed.append(("latent", latent))
        return np.full(HOP, 2.0, np.float32)


def _neural(fade: float = 0.5, hold: int = 1) -> NeuralConcealer:
    torch.manual_seed(0)
    table = np.random.default_rng(0).standard_normal((STAGES * SIZE, D)).astype(np.float32)
    return NeuralConcealer(HOP, StreamingPredictor(LatentPredictor(PredictorConfig(latent_dim=D, hidden=6))), table, SIZE, fade=fade, hold=hold)


def test_repeat_decodes_the_last_codes_faded_then_comfort_noise_without_the_decoder() -> None:
    decoder, concealer = FakeDecoder(), RepeatConcealer(HOP, fade=0.5, max_repeats=2)
    codes = np.array([1, 2, 3])
    np.testing.assert_array_equal(concealer.received(decoder, codes), np.ones(HOP))
    assert concealer.missing(decoder)[0] == pytest.approx(0.5)
    assert concealer.missing(decoder)[0] == pytest.approx(0.25)
    fed = len(decoder.fed)
    assert np.abs(concealer.missing(decoder)).max() < 0.01  # comfort noise
    assert len(decoder.fed) == fed and all(np.array_equal(c, codes[:, None]) for _, c in decoder.fed)


def test_neural_decodes_the_predicted_latent_and_feeds_it_back() -> None:
    decoder, concealer = FakeDecoder(), _neural()
    codes = np.array([1, 0, 4])
    concealer.received(decoder, codes)
    expected = concealer.table[codes + np.arange(STAGES) * SIZE].sum(0)
    # A fresh predictor repeats its input: the guess is the received frame's latent.
    out = concealer.missing(decoder)
    kind, latent = decoder.fed[-1]
    assert kind == "latent"
    np.testing.assert_allclose(latent, expected, rtol=1e-5)
    np.testing.assert_allclose(out, 2.0, atol=0.01)  # first lost frame: held at full gain (hold 1)


def test_neural_aims_halfway_at_the_following_frame_when_it_is_here() -> None:
    codes, following = np.array([1, 0, 4]), np.array([3, 3])
    plain, aimed = _neural(), _neural()
    for concealer in (plain, aimed):
        concealer.received(FakeDecoder(), codes)
    guess = plain._guess.copy()
    plain_decoder, aimed_decoder = FakeDecoder(), FakeDecoder()
    plain.missing(plain_decoder)
    aimed.missing(aimed_decoder, following)
    target = aimed.table[following + np.arange(2) * SIZE].sum(0)  # a coarser frame: its stages only
    np.testing.assert_allclose(plain_decoder.fed[-1][1], guess, rtol=1e-5)
    np.testing.assert_allclose(aimed_decoder.fed[-1][1], 0.5 * (guess + target), rtol=1e-5)
    assert not np.allclose(plain._guess, aimed._guess)  # the predictor is fed what was played


def test_without_a_refiner_a_later_frame_is_aimed_at_along_the_straight_path() -> None:
    codes, later = np.array([1, 0, 4]), np.array([3, 3])
    concealer, decoder = _neural(), FakeDecoder()
    concealer.received(decoder, codes)
    guess = concealer._guess.copy()
    concealer.missing(decoder, later, 2)  # two frames on: a third of the way
    target = concealer.table[later + np.arange(2) * SIZE].sum(0)
    np.testing.assert_allclose(decoder.fed[-1][1], guess + (target - guess) / 3, rtol=1e-5)
    guess = concealer._guess.copy()
    concealer.missing(decoder, later, 5)  # beyond the predictor's reach (4): the prediction alone
    np.testing.assert_allclose(decoder.fed[-1][1], guess, rtol=1e-5)


def _refined(predictor: LatentPredictor) -> tuple[NeuralConcealer, StreamingPredictor]:
    table = np.random.default_rng(0).standard_normal((STAGES * SIZE, D)).astype(np.float32)
    reference = StreamingPredictor(predictor)  # the same predictor stepped by hand
    return NeuralConcealer(HOP, StreamingPredictor(predictor), table, SIZE, fade=0.5, hold=1), reference


def test_neural_with_a_refiner_decodes_its_refined_guess_given_the_later_frame_and_distance() -> None:
    torch.manual_seed(0)
    predictor = LatentPredictor(PredictorConfig(latent_dim=D, hidden=6, refiner=5, reach=3)).eval()
    assert predictor.refiner is not None
    torch.nn.init.normal_(predictor.refiner.out.weight)
    codes, later = np.array([1, 0, 4]), np.array([3, 3, 2])
    decoded = {}
    for distance in (0, 1, 3):
        concealer, reference = _refined(predictor)
        decoder = FakeDecoder()
        concealer.received(decoder, codes)
        guess = reference.step(concealer._latent(codes), False)
        later_latent = concealer._latent(later)
        concealer.missing(decoder, later if distance else None, max(distance, 1))
        expected = reference.refine(guess, later_latent if distance else None, distance)
        np.testing.assert_allclose(decoder.fed[-1][1], expected, rtol=1e-5)
        decoded[distance] = decoder.fed[-1][1]
    assert not np.allclose(decoded[1], decoded[3]) and not np.allclose(decoded[0], decoded[1])


def test_repeat_ignores_the_following_frame() -> None:
    decoder, concealer = FakeDecoder(), RepeatConcealer(HOP, fade=0.5)
    concealer.received(decoder, np.array([1, 2, 3]))
    assert concealer.missing(decoder, np.array([4, 4, 4]))[0] == pytest.approx(0.5)
    assert np.array_equal(decoder.fed[-1][1], np.array([1, 2, 3])[:, None])


def test_neural_fades_over_a_burst_stops_decoding_once_silent_and_returns_without_a_step() -> None:
    decoder, concealer = FakeDecoder(), _neural(fade=0.5, hold=1)
    concealer.received(decoder, np.array([1, 2, 3]))
    bursts = [concealer.missing(decoder) for _ in range(12)]
    levels = [float(np.abs(b).max()) for b in bursts]
    audible = [v for v in levels if v > 0.02]
    assert len(audible) >= 3 and all(b <= a + 1e-6 for a, b in zip(audible, audible[1:]))  # never louder in a burst
    assert max(abs(b[0] - a[-1]) for a, b in zip(bursts, bursts[1:])) < 0.6  # ramps inside frames, not steps
    assert levels[-1] < 0.01  # faded to comfort noise
    latents_fed = sum(kind == "latent" for kind, _ in decoder.fed)
    assert latents_fed < 12  # no decoding once the fade is inaudible
    back = concealer.received(decoder, np.array([1, 2, 3]))
    assert abs(back[0]) < 0.2 and back[-1] == pytest.approx(1.0)  # ramps up from silence, no click


def test_neural_before_any_frame_plays_comfort_noise() -> None:
    decoder = FakeDecoder()
    assert np.abs(_neural().missing(decoder)).max() < 0.01 and not decoder.fed


class _Quantizer:
    table = torch.zeros(STAGES * SIZE, 64)


class _Cfg:
    name = "soundstream16k-lyra2"
    codebook_size = SIZE


class _OtherCfg:
    name = "ssc16k"


class _Model:
    quantizer, cfg = _Quantizer(), _Cfg()


def test_the_receiver_switches_concealers_by_name() -> None:
    assert isinstance(make_concealer("repeat", HOP), RepeatConcealer)
    neural = make_concealer("neural", HOP, _Model())  # the shipped predictor
    assert isinstance(neural, NeuralConcealer) and neural.predictor.mean.shape == (64,)
    other = _Model()
    other.cfg = _OtherCfg()
    assert isinstance(make_concealer("neural", HOP, other), RepeatConcealer)  # the predictor knows one model's latents
    assert isinstance(make_concealer("neural", HOP), RepeatConcealer)  # no model: no codewords to predict with
    with pytest.raises(ValueError, match="unknown concealment"):
        make_concealer("silence", HOP)
