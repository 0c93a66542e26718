"""A one-minute training run, exact resume, export of the result."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch

from codec.train.trainer import TrainConfig, Trainer
from codec.weights import load_model, save_model

TINY = Path(__file__).resolve().parents[2] / "codec" / "train" / "configs" / "tiny.toml"


@pytest.fixture()
def data_dir(tmp_path: Path) -> Path:
    rng = np.random.default_rng(0)
    t = np.arange(16_000 * 6) / 16_000
    f0 = 120 + 40 * np.sin(2 * np.pi * 0.7 * t)
    voiced = sum(np.sin(2 * np.pi * k * np.cumsum(f0) / 16_000) / k for k in range(1, 12))
    pcm = (0.2 * voiced * (0.6 + 0.4 * np.sin(2 * np.pi * 3 * t)) + 0.01 * rng.standard_normal(t.size)) * 20_000
    folder = tmp_path / "data"
    folder.mkdir()
    np.save(folder / "speech.npy", pcm.astype(np.int16))
    np.save(folder / "speech_val.npy", pcm[: 16_000 * 2].astype(np.int16))
    np.save(folder / "music.npy", (rng.standard_normal(16_000 * 3) * 3000).astype(np.int16))
    return folder


def _config(data_dir: Path, out: Path) -> TrainConfig:
    return TrainConfig.from_toml(TINY).model_copy(update={"data_dir": data_dir, "out_dir": out})


def test_tiny_training_runs_logs_and_exports(data_dir: Path, tmp_path: Path) -> None:
    cfg = _config(data_dir, tmp_path / "run")
    trainer = Trainer(cfg, progress=False)
    first = trainer.validate()
    trainer.run()
    assert trainer.step == cfg.steps
    log = (cfg.out_dir / "log.csv").read_text().splitlines()
    assert log[0].startswith("step,") and len(log) > 2
    assert trainer.validate()["val_mel_12k"] < first["val_mel_12k"]  # it learns something
    save_model(trainer.model, tmp_path / "weights")
    model, _ = load_model(tmp_path / "weights")
    assert model.cfg == cfg.codec


def test_resume_is_exact(data_dir: Path, tmp_path: Path) -> None:
    straight = Trainer(_config(data_dir, tmp_path / "a"), progress=False)
    straight.run(steps=12)

    interrupted = Trainer(_config(data_dir, tmp_path / "b"), progress=False)
    interrupted.run(steps=7)
    resumed = Trainer(_config(data_dir, tmp_path / "b"), progress=False)
    assert resumed.resume() and resumed.step == 7
    resumed.run(steps=5)

    for (name, a), b in zip(straight.model.state_dict().items(), resumed.model.state_dict().values()):
        assert torch.equal(a, b), name


def test_time_budget_stops_the_run_annealed_and_saved(data_dir: Path, tmp_path: Path) -> None:
    cfg = _config(data_dir, tmp_path / "timed").model_copy(update={"steps": 100_000, "time_budget_s": 1.0})
    trainer = Trainer(cfg, progress=False)
    trainer.run()
    assert 0 < trainer.step < cfg.steps
    assert trainer._lr() == pytest.approx(cfg.lr_final)  # the schedule ran on time, not on steps
    assert torch.load(trainer.ckpt_path, weights_only=False)["step"] == trainer.step


def test_adversarial_stage_trains_and_resumes(data_dir: Path, tmp_path: Path) -> None:
    cfg = _config(data_dir, tmp_path / "gan").model_copy(update={"gan_start_step": 6, "disc_channels": 4, "steps": 10})
    trainer = Trainer(cfg, progress=False)
    trainer.run(steps=8)
    rows = (cfg.out_dir / "log.csv").read_text().splitlines()
    header = rows[0].split(",")
    last = dict(zip(header, rows[-1].split(",")))
    assert float(last["disc"]) > 0 and float(last["feature"]) > 0
    resumed = Trainer(cfg, progress=False)
    assert resumed.resume()
    for a, b in zip(trainer.discriminators.parameters(), resumed.discriminators.parameters()):
        assert torch.equal(a, b)
    resumed.run()
    assert resumed.step == 10


def test_critics_warm_up_alone_before_the_generator_hears_them(data_dir: Path, tmp_path: Path) -> None:
    update = {"gan_start_step": 2, "disc_warmup_steps": 3, "disc_channels": 4, "steps": 7, "log_every": 1}
    cfg = _config(data_dir, tmp_path / "warm").model_copy(update=update)
    Trainer(cfg, progress=False).run()
    rows = (cfg.out_dir / "log.csv").read_text().splitlines()
    header = rows[0].split(",")
    logged = {int(r["step"]): r for r in (dict(zip(header, line.split(","))) for line in rows[1:]) if r.get("total")}
    critic_only = [s for s, r in logged.items() if r["disc"] and not r["feature"]]
    both = [s for s, r in logged.items() if r["disc"] and r["feature"]]
    assert critic_only and both and max(critic_only) < min(both)
    assert not any(r["disc"] for s, r in logged.items() if s < min(critic_only))


@pytest.mark.slow
def test_two_process_torchrun_on_cpu(data_dir: Path, tmp_path: Path) -> None:
    """Data-parallel training with gloo: both ranks step together and rank 0 writes."""
    import subprocess
    import sys

    import socket

    with socket.socket() as probe:  # a free port: a fixed one can still be held by an earlier run
        probe.bind(("127.0.0.1", 0))
        port = str(probe.getsockname()[1])
    out = tmp_path / "ddp"
    cmd = [
        sys.executable,
        "-m",
        "torch.distributed.run",
        "--nproc_per_node",
        "2",
        "--master_port",
        port,
        "-m",
        "codec",
        "train",
        "--config",
        str(TINY),
        "--data",
        str(data_dir),
        "--out",
        str(out),
        "--quiet",
    ]
    result = subprocess.run(cmd, capture_output=True, text=True, timeout=600, cwd=Path(__file__).resolve().parents[2])
    assert result.returncode == 0, result.stderr[-2000:]
    state = torch.load(out / "checkpoint.pt", weights_only=False)
    assert state["step"] == TrainConfig.from_toml(TINY).steps
    assert len(state["rng"]) == 2  # both ranks' random states, for an exact resume
    rows = (out / "log.csv").read_text().splitlines()
    assert rows[0].startswith("step,") and len(rows) > 2


def test_denoise_pairs_and_augmentation_train(data_dir: Path, tmp_path: Path) -> None:
    update = {"denoise_fraction": 0.5, "eq_probability": 0.5, "band_limit_probability": 0.5, "steps": 10}
    cfg = _config(data_dir, tmp_path / "denoise").model_copy(update=update)
    trainer = Trainer(cfg, progress=False)
    x, target, flag = trainer._batch()
    noisy = (x - target).abs().amax(-1) > 1e-6  # noisy input whose target is the clean signal
    assert torch.all(flag[noisy] == 1.0)
    trainer.run()
    header, *rows = (cfg.out_dir / "log.csv").read_text().splitlines()
    last = dict(zip(header.split(","), rows[-1].split(",")))
    assert last["val_denoise_sisdr_gain"] not in ("", "nan")


def test_a_log_with_old_columns_is_rewritten_by_name(data_dir: Path, tmp_path: Path) -> None:
    cfg = _config(data_dir, tmp_path / "old").model_copy(update={"steps": 5})
    cfg.out_dir.mkdir()
    (cfg.out_dir / "log.csv").write_text("step,mel,total\n3,1.5,4.0\n")
    Trainer(cfg, progress=False).run()
    header, first, *_ = (cfg.out_dir / "log.csv").read_text().splitlines()
    row = dict(zip(header.split(","), first.split(",")))
    assert (row["step"], row["mel"], row["total"]) == ("3", "1.5", "4.0")


def test_init_from_shipped_weights_file(data_dir: Path, tmp_path: Path) -> None:
    first = Trainer(_config(data_dir, tmp_path / "a"), progress=False)
    save_model(first.model, tmp_path / "w")
    cfg = _config(data_dir, tmp_path / "b").model_copy(update={"init_from": tmp_path / "w" / "ssc16k.pt"})
    second = Trainer(cfg, progress=False)
    a, b = first.model.state_dict(), second.model.state_dict()
    assert torch.allclose(a["decoder.head.weight"], b["decoder.head.weight"], atol=1e-3)  # float16 round trip


def test_log_rows_written_under_an_old_header_keep_their_own_columns(data_dir: Path, tmp_path: Path) -> None:
    from codec.train.trainer import _LOG_FIELDS, _upgrade_log

    log = tmp_path / "log.csv"
    new_row = ["7"] + ["0.5"] * (len(_LOG_FIELDS) - 1)
    log.write_text("step,mel\n3,1.5\n" + ",".join(new_row) + "\n")
    _upgrade_log(log)
    header, old, new = log.read_text().splitlines()
    assert header.split(",") == _LOG_FIELDS
    assert dict(zip(_LOG_FIELDS, old.split(",")))["mel"] == "1.5"
    assert new.split(",")[: len(new_row)] == new_row


def test_validation_logs_the_latent_error_per_layer_count(data_dir: Path, tmp_path: Path) -> None:
    cfg = _config(data_dir, tmp_path / "latent").model_copy(update={"commitment": "final"})
    trainer = Trainer(cfg, progress=False)
    assert trainer.model.quantizer.commitment == "final"
    trainer.run()
    stats = trainer.validate()
    errors = [stats[f"val_latent_err_{k}"] for k in (1, 2, 4)]  # the tiny model has 8 layers
    assert "val_latent_err_12" not in stats
    assert errors[0] >= errors[1] >= errors[2] > 0  # each added layer codes part of the residual
    assert 1.0 <= stats["val_latent_dims"] <= cfg.codec.latent_dim
    header, *rows = (cfg.out_dir / "log.csv").read_text().splitlines()
    last = dict(zip(header.split(","), rows[-1].split(",")))
    assert last["val_latent_err_1"] not in ("", "nan") and last["val_latent_err_12"] == ""


def test_init_from_with_a_whitened_latent_keeps_the_model_and_trains(data_dir: Path, tmp_path: Path) -> None:
    first = Trainer(_config(data_dir, tmp_path / "a"), progress=False)
    first.run(steps=8)
    first.save()
    cfg = _config(data_dir, tmp_path / "b").model_copy(update={"init_from": first.ckpt_path, "whiten_latent": 0.5, "warmup_steps": 0, "steps": 4})
    second = Trainer(cfg, progress=False)
    x = first.val_batch
    with torch.no_grad():
        assert torch.allclose(second.model.decoder(second.model.encoder(x)), first.model.decoder(first.model.encoder(x)), atol=1e-4)
    second.run()
    assert all(bool(layer.initialized) for layer in second.model.quantizer.layers)


@pytest.mark.parametrize("path", sorted(TINY.parent.glob("*.toml")), ids=lambda p: p.name)
def test_every_bundled_config_parses(path: Path) -> None:
    cfg = TrainConfig.from_toml(path)  # unknown keys are refused (extra="forbid")
    assert cfg.steps > 0 and cfg.batch_size > 0
