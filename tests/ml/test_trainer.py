"""TSMixerRegressor training discipline: learning, determinism, persistence, recovery.

Sizes are tiny (lookback 24, a few hundred windows) so every fit takes well under a second on
one core; the subprocess tests pay mostly for importing torch in the child.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from dataclasses import asdict
from pathlib import Path

import numpy as np
import pydantic
import pytest
import torch

from omniwatch.ml.checkpoints import CHECKPOINT_FILE, CheckpointMismatchError, data_fingerprint
from omniwatch.ml.trainer import (
    StepContext,
    TrainingDivergedError,
    TrainingOutOfMemoryError,
    TSMixerConfig,
    TSMixerRegressor,
)

torch.set_num_threads(1)

REPO = Path(__file__).resolve().parents[2]
LOOKBACK, CHANNELS = 24, 3
CHILD_ENV = {**os.environ, "PYTHONPATH": os.pathsep.join(filter(None, [str(REPO), os.environ.get("PYTHONPATH")])),
             "OMP_NUM_THREADS": "1", "MKL_NUM_THREADS": "1"}


def make_data(n: int = 500, seed: int = 0, signal_strength: float = 1.0) -> dict[str, np.ndarray]:
    """Windows whose labels (bps) depend on the last value of channel 0; channel 2 has gaps."""
    rng = np.random.default_rng(seed)
    X = rng.standard_normal((n, LOOKBACK, CHANNELS)).astype(np.float32) * 2 + 1
    X[:, :, 2][rng.random((n, LOOKBACK)) < 0.1] = np.nan
    last = (X[:, -1, 0] - 1) / 2
    y = signal_strength * np.stack([10 * last, 20 * last, 30 * last], axis=1)
    y = (y + 3 + rng.standard_normal((n, 3)) * 5).astype(np.float32)
    cut1, cut2 = int(n * 0.6), int(n * 0.8)
    return dict(X_train=X[:cut1], y_train=y[:cut1], X_val=X[cut1:cut2], y_val=y[cut1:cut2],
                X_test=X[cut2:], y_test=y[cut2:])


def small_config(**overrides: object) -> TSMixerConfig:
    base: dict = dict(lookback=LOOKBACK, path_steps=8, horizons=(1, 4, 8), n_blocks=2, d_ff=16,
                      batch_size=32, max_epochs=12, patience=4, lr=3e-3, lr_patience=2, seed=0)
    base.update(overrides)
    return TSMixerConfig(**base)


def split(data: dict[str, np.ndarray]) -> tuple[np.ndarray, ...]:
    return data["X_train"], data["y_train"], data["X_val"], data["y_val"]


def fit(config: TSMixerConfig, data: dict[str, np.ndarray], **kwargs: object):
    regressor = TSMixerRegressor(config)
    report = regressor.fit(*split(data), **kwargs)
    return regressor, report


def metrics(report) -> list[dict]:
    return [asdict(record) for record in report.history]


@pytest.fixture(scope="module")
def data() -> dict[str, np.ndarray]:
    return make_data()


def test_config_is_frozen_canonical_and_hashed() -> None:
    config = small_config()
    with pytest.raises(pydantic.ValidationError):
        config.lr = 1.0  # type: ignore[misc]
    text = config.to_json()
    assert text == small_config().to_json() and " " not in text
    assert list(json.loads(text)) == sorted(json.loads(text))
    assert TSMixerConfig.model_validate_json(text) == config
    assert len(config.config_hash()) == 64 and config.config_hash() == small_config().config_hash()
    assert small_config(seed=1).config_hash() != config.config_hash()


@pytest.mark.parametrize(
    "overrides",
    [dict(horizons=(1, 9)), dict(horizons=(4, 1)), dict(loss_weights=(1.0, 1.0)), dict(unknown=1)],
)
def test_config_refuses_inconsistent_settings(overrides: dict) -> None:
    with pytest.raises(pydantic.ValidationError):
        small_config(**overrides)


def test_learns_a_simple_signal_better_than_the_zero_and_mean_forecasts(data) -> None:
    regressor, report = fit(small_config(revin=False), data)
    pred, truth = regressor.predict(data["X_test"]), data["y_test"]
    assert pred.shape == truth.shape and pred.dtype == np.float32
    model_mse = float(((pred - truth) ** 2).mean())
    zero_mse = float((truth**2).mean())
    mean_mse = float(((truth - data["y_train"].mean(axis=0)) ** 2).mean())
    assert model_mse < 0.5 * mean_mse < 0.5 * zero_mse
    assert report.best_val_loss < 0.5 and report.history[0].val_loss > report.best_val_loss


@pytest.mark.parametrize("revin", [True, False])
def test_trains_with_revin_on_and_off(data, revin: bool) -> None:
    regressor, report = fit(small_config(revin=revin, max_epochs=6, patience=6), data)
    assert report.epochs_run == 6
    assert report.best_val_loss < report.history[0].val_loss
    assert all(np.isfinite(r.train_loss) for r in report.history)
    assert report.history[-1].train_loss < report.history[0].train_loss
    assert np.isfinite(regressor.predict(data["X_test"])).all()
    assert (regressor.model.revin is not None) is revin


def test_same_seed_gives_bit_identical_predictions_and_metrics(data) -> None:
    first, first_report = fit(small_config(max_epochs=5), data)
    second, second_report = fit(small_config(max_epochs=5), data)
    assert np.array_equal(first.predict(data["X_test"]), second.predict(data["X_test"]))
    assert metrics(first_report) == metrics(second_report)
    other, _ = fit(small_config(max_epochs=5, seed=1), data)
    assert not np.array_equal(first.predict(data["X_test"]), other.predict(data["X_test"]))


def test_saved_artifact_reproduces_predictions_in_a_fresh_process(data, tmp_path: Path) -> None:
    regressor, _ = fit(small_config(max_epochs=4), data)
    artifact = tmp_path / "tsmixer.pt"
    regressor.save(artifact)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["tsmixer.pt"]  # one file, no leftovers
    payload = torch.load(artifact, weights_only=True)
    assert {"state_dict", "config", "norm", "n_channels"} <= set(payload)
    np.save(tmp_path / "x.npy", data["X_test"])
    child = (
        "import sys, numpy as np, torch; torch.set_num_threads(1)\n"
        "from omniwatch.ml.trainer import TSMixerRegressor\n"
        "model = TSMixerRegressor.load(sys.argv[1])\n"
        "np.save(sys.argv[3], model.predict(np.load(sys.argv[2])))\n"
    )
    args = [str(artifact), str(tmp_path / "x.npy"), str(tmp_path / "pred.npy")]
    subprocess.run([sys.executable, "-c", child, *args],
                   check=True, env=CHILD_ENV, cwd=tmp_path, timeout=120)
    assert np.array_equal(np.load(tmp_path / "pred.npy"), regressor.predict(data["X_test"]))


def test_fit_leaves_the_callers_arrays_untouched_and_predict_runs_in_eval_mode(data) -> None:
    # inputs are standardised once per fit, in place on a copy: never on the caller's memory
    before = {name: array.copy() for name, array in data.items()}
    regressor, _ = fit(small_config(max_epochs=2), data)
    for name, array in data.items():
        np.testing.assert_array_equal(array, before[name])  # NaN positions included
    expected = regressor.predict(data["X_test"])
    regressor.model.train()  # predict switches dropout off whatever mode it finds the model in
    assert np.array_equal(regressor.predict(data["X_test"]), expected)
    # one window alone: equal up to float rounding (GEMM kernels differ with the batch's size)
    np.testing.assert_allclose(regressor.predict(data["X_test"][:1]), expected[:1], rtol=1e-5, atol=1e-4)


def test_early_stopping_stops_on_a_plateau_and_restores_the_best_weights() -> None:
    noise = make_data(n=400, seed=3, signal_strength=0.0)
    config = small_config(max_epochs=60, patience=3, lr=1e-2, lr_patience=1)
    regressor, report = fit(config, noise)
    assert report.epochs_run < config.max_epochs
    assert report.best_epoch == report.epochs_run - 1 - config.patience
    assert report.history[-1].val_loss > report.best_val_loss
    # the restored weights are the best epoch's: their validation loss is the best one
    # (in standardised label units: the mean cancels in the error, the per-horizon scale stays)
    y_std = regressor.norm.y_std.numpy()
    scaled_error = (regressor.predict(noise["X_val"]) - noise["y_val"]) / y_std
    val_loss = (scaled_error**2).mean()
    assert val_loss == pytest.approx(report.best_val_loss, rel=1e-4)


def test_the_scheduler_lowers_the_learning_rate_on_a_plateau() -> None:
    noise = make_data(n=400, seed=3, signal_strength=0.0)
    config = small_config(max_epochs=60, patience=6, lr=1e-2, lr_patience=1, lr_factor=0.5)
    _, report = fit(config, noise)
    rates = [record.lr for record in report.history]
    assert rates[0] == config.lr and rates[-1] < config.lr
    assert all(later <= earlier for earlier, later in zip(rates, rates[1:], strict=False))
    assert config.lr * config.lr_factor in rates


CHILD_TRAINER = """
import json, sys, time
import numpy as np, torch
torch.set_num_threads(1)
from omniwatch.ml.trainer import TSMixerConfig, TSMixerRegressor
data_path, config_path, checkpoint_dir, out_path, pause = sys.argv[1:6]
data = np.load(data_path)
regressor = TSMixerRegressor(TSMixerConfig.model_validate_json(open(config_path).read()))
report = regressor.fit(data["X_train"], data["y_train"], data["X_val"], data["y_val"],
                       checkpoint_dir=checkpoint_dir,
                       on_epoch_end=lambda r: time.sleep(float(pause)))
np.save(out_path, regressor.predict(data["X_test"]))
json.dump({"history": [r.__dict__ for r in report.history], "best": report.best_val_loss,
           "resumed": report.resumed_from_epoch}, open(out_path + ".json", "w"))
"""


def run_child(tmp_path: Path, pause: float) -> subprocess.Popen:
    args = [str(tmp_path / n) for n in ("data.npz", "config.json", "ckpt", "pred.npy")]
    return subprocess.Popen([sys.executable, "-c", CHILD_TRAINER, *args, str(pause)],
                            env=CHILD_ENV, cwd=tmp_path)


def test_a_killed_run_resumes_to_the_same_result_as_an_uninterrupted_one(tmp_path: Path) -> None:
    # Noise labels, so that after the kill point the scheduler lowers the rate and early stopping
    # ends the run: resuming must restore their state too, not only weights and optimiser.
    data = make_data(n=400, seed=3, signal_strength=0.0)
    config = small_config(max_epochs=12, patience=6, lr=1e-2, lr_patience=1)
    reference, reference_report = fit(config, data)  # uninterrupted, same seed, no checkpoints
    assert reference_report.epochs_run < config.max_epochs
    assert reference_report.history[4].lr > reference_report.history[-1].lr
    np.savez(tmp_path / "data.npz", **data)
    (tmp_path / "config.json").write_text(config.to_json())
    run_key = f"{config.config_hash()[:16]}-{data_fingerprint(*split(data))[:16]}"
    checkpoint = tmp_path / "ckpt" / run_key / CHECKPOINT_FILE

    # given a training process that we SIGKILL once its checkpoint says epoch >= 4 (by then the
    # patience counter and the scheduler hold state that a fresh start would not have)
    child, seen_epoch, seen_mtime = run_child(tmp_path, pause=0.4), -1, None
    deadline = time.monotonic() + 120
    while seen_epoch < 4 and child.poll() is None and time.monotonic() < deadline:
        time.sleep(0.02)
        if checkpoint.exists() and checkpoint.stat().st_mtime_ns != seen_mtime:
            seen_mtime = checkpoint.stat().st_mtime_ns
            seen_epoch = torch.load(checkpoint, weights_only=True)["epoch"]
    child.send_signal(signal.SIGKILL)
    assert child.wait(timeout=30) == -signal.SIGKILL, "the child finished before it was killed"
    stored = torch.load(checkpoint, weights_only=True)
    killed_at = stored["epoch"]
    assert 4 <= killed_at < reference_report.epochs_run - 1
    assert stored["config_hash"] == config.config_hash()
    assert {"model", "optimizer", "scheduler", "state"} <= set(stored)
    assert {"rng", "best_state", "best_val", "bad_epochs"} <= set(stored["state"])
    assert stored["state"]["bad_epochs"] > 0

    # when a new process trains with the same config and checkpoint_dir
    resumed = run_child(tmp_path, pause=0.0)
    assert resumed.wait(timeout=120) == 0

    # then it resumed from the checkpoint and ends exactly where the uninterrupted run ended
    result = json.loads((tmp_path / "pred.npy.json").read_text())
    assert result["resumed"] == killed_at
    assert result["history"] == metrics(reference_report)
    assert result["best"] == reference_report.best_val_loss
    assert np.array_equal(np.load(tmp_path / "pred.npy"), reference.predict(data["X_test"]))


def test_another_config_or_data_starts_fresh_beside_an_existing_checkpoint(data, tmp_path) -> None:
    # given a finished run's checkpoint in the directory
    _, first = fit(small_config(max_epochs=2), data, checkpoint_dir=tmp_path)
    original = next(tmp_path.glob(f"*/{CHECKPOINT_FILE}"))
    before = original.read_bytes()
    # when another config, then other data, train with the same directory
    _, other_config = fit(small_config(max_epochs=2, lr=1e-3), data, checkpoint_dir=tmp_path)
    _, other_data = fit(small_config(max_epochs=2), make_data(seed=9), checkpoint_dir=tmp_path)
    # then both start from scratch in their own folders and the first checkpoint is untouched
    assert other_config.resumed_from_epoch is None and other_data.resumed_from_epoch is None
    assert len(list(tmp_path.glob(f"*/{CHECKPOINT_FILE}"))) == 3
    assert original.read_bytes() == before
    assert original.parent.name.startswith(first.config_hash[:16])


def test_a_checkpoint_whose_identity_does_not_match_its_folder_is_refused(data, tmp_path) -> None:
    fit(small_config(max_epochs=1), data, checkpoint_dir=tmp_path / "a")
    fit(small_config(max_epochs=1, lr=1e-3), data, checkpoint_dir=tmp_path / "b")
    # a checkpoint copied into another run's folder must not be resumed from
    [source] = (tmp_path / "a").glob(f"*/{CHECKPOINT_FILE}")
    [target] = (tmp_path / "b").glob(f"*/{CHECKPOINT_FILE}")
    target.write_bytes(source.read_bytes())
    with pytest.raises(CheckpointMismatchError, match="config_hash"):
        fit(small_config(max_epochs=1, lr=1e-3), data, checkpoint_dir=tmp_path / "b")


def test_a_finished_checkpoint_is_not_trained_again(data, tmp_path: Path) -> None:
    first, first_report = fit(small_config(max_epochs=3), data, checkpoint_dir=tmp_path)
    again, again_report = fit(small_config(max_epochs=3), data, checkpoint_dir=tmp_path)
    assert again_report.resumed_from_epoch == 2 and metrics(again_report) == metrics(first_report)
    assert np.array_equal(first.predict(data["X_test"]), again.predict(data["X_test"]))


def test_a_nan_loss_rolls_back_halves_the_lr_and_training_completes(data) -> None:
    poisoned: list[StepContext] = []

    def poison_once(ctx: StepContext) -> None:  # a diverged model: NaN weights at epoch 1
        if ctx.epoch == 1 and ctx.step == 2 and not poisoned:
            poisoned.append(ctx)
            with torch.no_grad():
                next(ctx.model.parameters()).fill_(float("nan"))

    config = small_config(max_epochs=4, patience=4, lr_patience=10)
    regressor, report = fit(config, data, step_hook=poison_once)
    assert poisoned and report.nan_restarts == 1
    assert [r.epoch for r in report.history] == [0, 1, 2, 3]
    assert report.history[0].lr == config.lr and report.history[1].lr == config.lr / 2
    # the rollback restored finite weights (otherwise every later step would be NaN again)
    assert all(torch.isfinite(p).all() for p in regressor.model.parameters())
    assert np.isfinite(regressor.predict(data["X_test"])).all()


def test_a_diverging_learning_rate_is_halved_until_training_holds(data) -> None:
    # AdamW at lr 1e4 overflows within two steps; each rollback halves the rate until it does not
    config = small_config(lr=1e4, max_nan_retries=20, max_epochs=3, patience=3, lr_patience=10)
    _, report = fit(config, data)
    assert report.nan_restarts >= 1 and report.epochs_run == 3
    assert [r.lr for r in report.history] == [config.lr / 2**report.nan_restarts] * 3
    assert all(np.isfinite(r.val_loss) for r in report.history)


def test_a_persistently_diverging_run_fails_after_bounded_retries(data) -> None:
    config = small_config(lr=1e6, max_nan_retries=2)  # AdamW at this rate overflows in one step
    regressor = TSMixerRegressor(config)
    with pytest.raises(TrainingDivergedError, match=r"epoch 0, step \d+, lr 2.5e\+05") as failure:
        regressor.fit(*split(data))
    assert failure.value.restarts == 2 and failure.value.lr == config.lr / 4
    with pytest.raises(RuntimeError, match="not fitted"):  # no half-trained model is left
        regressor.predict(data["X_test"])


def oom_while(condition):
    def hook(ctx: StepContext) -> None:
        if condition(ctx):
            raise torch.cuda.OutOfMemoryError("CUDA out of memory. Tried to allocate 2 GiB (test)")
    return hook


def test_cuda_oom_halves_the_batch_and_training_completes(data) -> None:
    config = small_config(max_epochs=4, patience=4, batch_size=32)
    # OOM at the second step of epoch 2 for every batch larger than 8
    hook = oom_while(lambda ctx: ctx.epoch == 2 and ctx.step == 1 and ctx.batch_size > 8)
    regressor, report = fit(config, data, step_hook=hook)
    assert report.oom_halvings == 2
    assert [r.batch_size for r in report.history] == [32, 32, 8, 8]
    assert [r.epoch for r in report.history] == [0, 1, 2, 3]
    assert np.isfinite(regressor.predict(data["X_test"])).all()


def test_cuda_oom_beyond_the_bound_raises_a_clear_error(data) -> None:
    config = small_config(max_epochs=2, batch_size=32, max_oom_retries=2)
    with pytest.raises(TrainingOutOfMemoryError, match="batch size 8 after 2 halvings"):
        fit(config, data, step_hook=oom_while(lambda ctx: True))


def test_bad_inputs_are_refused(data) -> None:
    regressor = TSMixerRegressor(small_config())
    X, y = data["X_train"].copy(), data["y_train"].copy()
    with pytest.raises(ValueError, match="inf"):
        bad = X.copy()
        bad[0, 0, 0] = np.inf
        regressor.fit(bad, y, data["X_val"], data["y_val"])
    with pytest.raises(ValueError, match="NaN or inf"):
        bad_y = y.copy()
        bad_y[0, 0] = np.nan
        regressor.fit(X, bad_y, data["X_val"], data["y_val"])
    with pytest.raises(ValueError, match="must be"):
        regressor.fit(X[:, 1:], y, data["X_val"], data["y_val"])
    with pytest.raises(RuntimeError, match="not fitted"):
        regressor.predict(X)
    fitted, _ = fit(small_config(max_epochs=1), data)
    with pytest.raises(ValueError, match="channels"):
        fitted.predict(X[:, :, :2])


def test_devices_are_validated_never_silently_replaced() -> None:
    with pytest.raises(ValueError, match="unsupported device"):
        TSMixerRegressor(small_config(), device="mps")
    if not torch.cuda.is_available():
        with pytest.raises(ValueError, match="CUDA is not available"):
            TSMixerRegressor(small_config(), device="cuda:1")
    assert str(TSMixerRegressor(small_config(), device="cpu").device) == "cpu"
