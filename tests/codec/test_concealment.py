"""The latent predictor and its refiner stream, and their trainers run, resume and log on a tiny config."""

from __future__ import annotations

import csv

import numpy as np
import pytest
import torch

from codec.concealment import LatentPredictor, PredictorConfig, StreamingPredictor, load_predictor, save_predictor
from codec.train.concealment import TrainConfig, batch_of, loss_patterns, main, train
from codec.train.concealment_refiner import RefinerConfig, later_distances, refiner_model
from codec.train.concealment_refiner import train as train_refiner


def _model() -> LatentPredictor:
    torch.manual_seed(0)
    model = LatentPredictor(PredictorConfig(latent_dim=8, hidden=16))
    torch.nn.init.normal_(model.head.weight, std=0.3)  # not the "repeat" start: a real prediction
    model.mean.normal_()
    model.scale.uniform_(0.5, 2.0)
    return model.eval()


def _streamed(model: LatentPredictor, latents: torch.Tensor, lost: torch.Tensor) -> torch.Tensor:
    """Frame by frame as the receiver runs it: a lost frame is replaced by the last prediction."""
    state = model.initial_state(latents.shape[0])
    previous = model.mean.expand(latents.shape[0], -1)
    outputs = []
    for t in range(latents.shape[1]):
        gone = lost[:, t]
        played = torch.where(gone[:, None], previous, latents[:, t])
        previous, state = model.step(played, gone.float(), state)
        outputs.append(model.normalise(previous))
    return torch.stack(outputs, 1)


def test_frame_by_frame_equals_whole_sequence_with_and_without_losses() -> None:
    model = _model()
    latents = torch.randn(3, 40, 8) * 3
    none = torch.zeros(3, 40, dtype=torch.bool)
    lost = torch.from_numpy(loss_patterns(np.random.default_rng(0), 3, 40, 0.4, 3.0))
    assert lost.any() and not lost.all()
    with torch.no_grad():
        for mask in (none, lost):
            torch.testing.assert_close(_streamed(model, latents, mask), model(latents, mask), atol=1e-5, rtol=1e-5)


def test_numpy_step_matches_the_module() -> None:
    model = _model()
    torch.nn.init.normal_(model.gru.bias_hh_l0)
    latents = torch.randn(1, 30, 8) * 3
    lost = torch.from_numpy(loss_patterns(np.random.default_rng(1), 1, 30, 0.4, 3.0))
    with torch.no_grad():
        whole = model(latents, lost)[0] * model.scale + model.mean
    stream, previous, out = StreamingPredictor(model), None, []
    for t in range(30):
        gone = bool(lost[0, t])
        played = (previous if previous is not None else model.mean.numpy()) if gone else latents[0, t].numpy()
        previous = stream.step(played, gone)
        out.append(previous)
    np.testing.assert_allclose(np.stack(out), whole.numpy(), rtol=1e-4, atol=1e-4)


def test_fresh_predictor_repeats_the_last_latent_and_round_trips(tmp_path) -> None:
    model = LatentPredictor(PredictorConfig(latent_dim=8, hidden=16)).eval()
    x = torch.randn(2, 8)
    nxt, _ = model.step(x, torch.zeros(2), model.initial_state(2))
    torch.testing.assert_close(nxt, x)
    trained = _model()
    save_predictor(trained, tmp_path / "p.pt")
    again = load_predictor(tmp_path / "p.pt")
    latents = torch.randn(1, 5, 8)
    with torch.no_grad():
        torch.testing.assert_close(again(latents), trained(latents))


def test_loss_patterns_hit_their_rate_in_bursts() -> None:
    lost = loss_patterns(np.random.default_rng(0), 2000, 200, 0.3, 4.0)
    assert 0.1 < lost.mean() < 0.2  # rates U(0, 0.3): mean 0.15
    starts = (lost[:, 1:] & ~lost[:, :-1]).sum() + lost[:, 0].sum()
    assert lost.sum() / starts > 1.8  # bursts (mean length U(1, 4)), not independent losses (~1.2 at 15 %)


def test_floor_share_puts_examples_at_the_fewest_stages() -> None:
    rng = np.random.default_rng(0)
    books = rng.standard_normal((10, 4, 3)).astype(np.float32)
    codes = rng.integers(0, 4, (200, 10)).astype(np.uint8)
    arrays = {"train_z": rng.standard_normal((200, 3)).astype(np.float16), "train_c": codes, "books": books}
    cfg = TrainConfig(batch=16, frames=5, min_stages=2, floor_share=1.0)
    inputs, _, _ = batch_of(arrays, "train", np.random.default_rng(1), cfg)
    two_stages = books[0][codes[:, 0]] + books[1][codes[:, 1]]  # every frame's latent through 2 stages
    assert all(any(np.allclose(x, row, atol=1e-5) for row in two_stages) for x in inputs.reshape(-1, 3).numpy()[:20])
    spread, _, _ = batch_of(arrays, "train", np.random.default_rng(1), TrainConfig(batch=16, frames=5, min_stages=2))
    assert not np.allclose(spread.numpy(), inputs.numpy())  # without the floor: 2..10 stages


def _tiny_data(folder) -> None:
    rng = np.random.default_rng(0)
    t = np.arange(16000 * 3) / 16000
    speechy = 0.3 * np.sin(2 * np.pi * 180 * t * (1 + 0.1 * np.sin(3 * t))) * (0.5 + 0.5 * np.sin(2 * np.pi * 2 * t)) + 0.01 * rng.standard_normal(t.size)
    folder.mkdir()
    np.save(folder / "speech.npy", (speechy * 32767).astype(np.int16))
    np.save(folder / "speech_val.npy", (speechy[::-1] * 32767).astype(np.int16))


def test_tiny_training_logs_resumes_and_writes_weights(tmp_path) -> None:
    _tiny_data(tmp_path / "data")
    cfg = TrainConfig(steps=4, batch=4, frames=12, hidden=16, minutes=0.05, val_minutes=0.05, eval_every=2)
    train(tmp_path / "data", tmp_path / "run", cfg, log_every=1)
    rows = list(csv.DictReader((tmp_path / "run" / "log.csv").open()))
    assert [int(r["step"]) for r in rows] == [1, 2, 3, 4]
    assert all(np.isfinite(float(r["loss"])) for r in rows) and rows[-1]["val_lost_mse"]
    resumed = train(tmp_path / "data", tmp_path / "run", TrainConfig(**{**cfg.__dict__, "steps": 6}), log_every=1)
    rows = list(csv.DictReader((tmp_path / "run" / "log.csv").open()))
    assert [int(r["step"]) for r in rows][-2:] == [5, 6]  # continued, not restarted
    assert torch.load(tmp_path / "run" / "checkpoint.pt", weights_only=False)["step"] == 6
    assert load_predictor(tmp_path / "run" / "predictor.pt").cfg.hidden == resumed.cfg.hidden == 16


def test_missing_data_is_a_one_line_error(tmp_path, capsys) -> None:
    assert main(["--data", str(tmp_path), "--out", str(tmp_path / "run")]) == 2
    assert capsys.readouterr().err.startswith("error: ")


def test_a_cache_of_another_models_codes_is_refused(tmp_path, capsys) -> None:
    _tiny_data(tmp_path / "data")
    cfg = TrainConfig(steps=1, batch=2, frames=12, hidden=16, minutes=0.05, val_minutes=0.05, eval_every=1)
    train(tmp_path / "data", tmp_path / "run", cfg)
    args = ["--data", str(tmp_path / "data"), "--out", str(tmp_path / "run"), "--model", "soundstream16k-lyra2x", "--steps", "2"]
    assert main(args) == 2 and "use another --out" in capsys.readouterr().err


@pytest.mark.parametrize("engine", ["onnx", "torch"])
def test_decoding_a_latent_equals_decoding_its_codes(engine: str) -> None:
    from codec.engine import frame_decoder
    from codec.weights import load_model

    model, model_id = load_model(None, "soundstream16k-lyra2")
    model.eval()
    codes = np.random.default_rng(0).integers(0, model.cfg.codebook_size, (46, 3))
    latents = model.quantizer.decode(torch.from_numpy(codes)[None])[0].numpy()
    decoder = frame_decoder(model, model_id, engine)  # torch: one streaming decoder a model at a time
    try:
        by_codes = [decoder.decode(codes[:, t : t + 1]) for t in range(3)]
        decoder.reset()
        by_latent = [decoder.decode_latent(latents[t]) for t in range(3)]
    finally:
        decoder.close()
    np.testing.assert_allclose(np.stack(by_latent), np.stack(by_codes), atol=1e-5)


def _refined_model() -> LatentPredictor:
    torch.manual_seed(1)
    model = LatentPredictor(PredictorConfig(latent_dim=8, hidden=16, refiner=12, reach=3))
    base = _model()
    model.load_state_dict(base.state_dict(), strict=False)
    assert model.refiner is not None
    torch.nn.init.normal_(model.refiner.out.weight, std=0.3)  # not the identity start
    torch.nn.init.normal_(model.refiner.inner.bias)
    return model.eval()


def test_a_fresh_refiner_decodes_the_straight_path_to_the_later_frame() -> None:
    model = LatentPredictor(PredictorConfig(latent_dim=8, hidden=16, refiner=12))
    model.load_state_dict(_model().state_dict(), strict=False)
    latents, lost = torch.randn(2, 20, 8), torch.from_numpy(loss_patterns(np.random.default_rng(2), 2, 20, 0.4, 3.0))
    lost[:, 0] = False
    distance = torch.from_numpy(later_distances(lost.numpy(), 4, 0.3, np.random.default_rng(0)))
    assert (distance[lost] == 0).any() and (distance[lost] > 1).any()
    with torch.no_grad():
        played = model.played(latents, lost, distance)
    # By hand: the prediction from what was played, then a step 1/(d + 1) of the way to the later frame.
    state, rows, guess = model.initial_state(2), torch.arange(2), latents[:, 0]
    with torch.no_grad():
        for t in range(20):
            if t:
                d = distance[:, t].float()[:, None]
                later = latents[rows, (t + distance[:, t]).clamp(max=19)]
                path = torch.where(d > 0, guess + (later - guess) / (d + 1), guess)
                torch.testing.assert_close(played[:, t][lost[:, t]], path[lost[:, t]], atol=1e-5, rtol=1e-5)
            guess, state = model.step(played[:, t], lost[:, t].float(), state)
    torch.testing.assert_close(played[~lost], latents[~lost])


def test_the_receivers_refined_rollout_equals_the_whole_sequence() -> None:
    """`played` (training) against the NumPy step and refine a receiver runs, frame by frame."""
    model = _refined_model()
    latents = torch.randn(1, 40, 8) * 3
    lost = torch.zeros(1, 40, dtype=torch.bool)
    lost[0, [3, 7, 8, 12, 13, 14, 20, 21, 22, 23, 24, 25, 30, 35, 36]] = True  # single, bursts, one past the reach
    distance = torch.from_numpy(later_distances(lost.numpy(), 3, 0.3, np.random.default_rng(4)))
    assert lost.sum() > 5 and (distance[lost] > 0).any() and (distance[lost] == 0).any()
    with torch.no_grad():
        whole = model.played(latents, lost, distance)[0].numpy()
    stream, guess, out = StreamingPredictor(model), None, []
    for t in range(40):
        x = latents[0, t].numpy()
        if lost[0, t]:
            d = int(distance[0, t])
            x = stream.refine(guess, latents[0, t + d].numpy() if d else None, d)
        out.append(x)
        guess = stream.step(x, bool(lost[0, t]))
    np.testing.assert_allclose(np.stack(out), whole, rtol=1e-4, atol=1e-4)
    refined_frames = np.abs(np.stack(out) - latents[0].numpy()).max(-1) > 1e-3
    assert refined_frames[lost[0].numpy()].all()  # the refiner did change what lost frames decode


def test_later_distances_point_at_the_nearest_received_frame() -> None:
    lost = np.array([[False, True, True, False, True, True, True, True, True, False]])
    distance = later_distances(lost, 4, 0.0, np.random.default_rng(0))
    assert distance.tolist() == [[0, 2, 1, 0, 0, 4, 3, 2, 1, 0]]  # frame 4: frame 9 is 5 on
    hidden = later_distances(np.ones((200, 40), bool) & (np.arange(40) % 2 == 0), 4, 0.5, np.random.default_rng(0))
    assert 0.4 < (hidden[:, :-1:2] == 0).mean() < 0.6


def test_tiny_refiner_training_logs_resumes_and_keeps_the_predictor(tmp_path) -> None:
    _tiny_data(tmp_path / "data")
    cfg = TrainConfig(steps=2, batch=4, frames=12, hidden=16, minutes=0.05, val_minutes=0.05, eval_every=2)
    base = train(tmp_path / "data", tmp_path / "base", cfg)
    refiner_cfg = RefinerConfig(steps=3, batch=4, frames=12, warmup=2, refiner=8, minutes=0.05, val_minutes=0.05, eval_every=2)
    run = tmp_path / "refine"
    train_refiner(tmp_path / "data", run, refiner_cfg, tmp_path / "base" / "predictor.pt", log_every=1)
    rows = list(csv.DictReader((run / "log.csv").open()))
    assert [int(r["step"]) for r in rows] == [0, 1, 2, 3] and rows[0]["val_decoded"] and rows[2]["val_decoded"]
    assert np.isfinite(float(rows[-1]["decoded"]))
    train_refiner(tmp_path / "data", run, RefinerConfig(**{**refiner_cfg.__dict__, "steps": 5}), tmp_path / "base" / "predictor.pt", log_every=1)
    assert [int(r["step"]) for r in csv.DictReader((run / "log.csv").open())][-2:] == [4, 5]
    refined = load_predictor(run / "predictor.pt")
    assert refined.refiner is not None and refined.cfg.refiner == 8
    for name, tensor in base.state_dict().items():  # the GRU, head and statistics are the base's
        torch.testing.assert_close(refined.state_dict()[name], tensor)
    assert any(float(p.detach().abs().max()) > 0 for p in refined.refiner.out.parameters())  # and the refiner learnt
    again = refiner_model(run / "predictor.pt", refiner_cfg)  # from a refined predictor: its GRU, a fresh refiner
    assert again.refiner is not None and float(again.refiner.out.weight.detach().abs().max()) == 0.0
    torch.testing.assert_close(again.gru.weight_hh_l0, base.gru.weight_hh_l0)
