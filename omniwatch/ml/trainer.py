"""Training discipline for :class:`~omniwatch.ml.tsmixer.TSMixer` on numpy arrays.

Frozen, hashed config; normalisation fitted on the training windows only and shipped inside the
artifact; fixed seeds and deterministic kernels; early stopping with best-weight restore;
ReduceLROnPlateau; an atomic checkpoint every epoch that a killed run resumes from bit-exactly;
a non-finite loss rolls back to the last good state with half the learning rate; a CUDA
out-of-memory error rolls back and halves the batch. Both recoveries are bounded.
"""

from __future__ import annotations

import math
import os
import time
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
import torch
from torch.optim.lr_scheduler import ReduceLROnPlateau

from omniwatch.ml.checkpoints import (
    CheckpointStore,
    EpochRecord,
    RunState,
    capture_rng,
    cpu_clone,
    data_fingerprint,
    deterministic_algorithms,
    load_artifact,
    resolve_device,
    restore_rng,
    save_artifact,
    seed_everything,
)
from omniwatch.ml.tsmixer import NormStats, TSMixer, TSMixerConfig

# cuBLAS reads this when it creates its first handle; deterministic mode refuses cuBLAS without it.
os.environ.setdefault("CUBLAS_WORKSPACE_CONFIG", ":4096:8")


@dataclass
class TrainingReport:
    epochs_run: int
    best_epoch: int
    best_val_loss: float
    history: list[EpochRecord]
    nan_restarts: int
    oom_halvings: int
    resumed_from_epoch: int | None  # last completed epoch found in the checkpoint
    config_hash: str
    device: str
    seconds: float  # wall time of this fit call


@dataclass(frozen=True)
class StepContext:
    """What a ``step_hook`` sees before each training step (a seam for tests and tracing)."""

    epoch: int
    step: int
    batch_size: int
    lr: float
    model: torch.nn.Module


class TrainingDivergedError(RuntimeError):
    """A non-finite loss outlived ``max_nan_retries`` rollbacks (internally: one such loss)."""

    def __init__(self, epoch: int, step: int | str, lr: float, restarts: int | None = None) -> None:
        super().__init__(
            f"training diverged: non-finite loss at epoch {epoch}, step {step}, lr {lr:.3g}, "
            f"after {restarts} restarts with halved learning rates (max_nan_retries reached)"
        )
        self.epoch, self.step, self.lr, self.restarts = epoch, step, lr, restarts


class TrainingOutOfMemoryError(RuntimeError):
    """CUDA ran out of memory even after the allowed batch-size halvings."""


StepHook = Callable[[StepContext], None]
Batches = tuple[torch.Tensor, torch.Tensor]  # standardised, NaN-free windows and labels, on the device


class TSMixerRegressor:
    """Fits, predicts with, saves and loads a TSMixer on raw windows ``(n, lookback, channels)``.

    Labels ``y`` are ``(n, len(horizons))`` in basis points; predictions come back in basis points.
    """

    def __init__(self, config: TSMixerConfig, device: str | torch.device = "cpu") -> None:
        self.config = config
        self.device = resolve_device(device)
        self.model: TSMixer | None = None
        self.norm: NormStats | None = None

    def fit(self, X_train: np.ndarray, y_train: np.ndarray, X_val: np.ndarray, y_val: np.ndarray,
            checkpoint_dir: str | os.PathLike[str] | None = None,
            on_epoch_end: Callable[[EpochRecord], None] | None = None,
            step_hook: StepHook | None = None) -> TrainingReport:
        """Train with early stopping; resume when ``checkpoint_dir`` holds this run's checkpoint.

        A run (config hash + data fingerprint) checkpoints into its own sub-folder of
        ``checkpoint_dir`` (see :class:`CheckpointStore`), so another config starts fresh there.
        ``on_epoch_end`` runs after each epoch's checkpoint is written; ``step_hook`` before each
        training step (tests raise CUDA OOM or poison weights through it).
        """
        started, cfg = time.perf_counter(), self.config
        self._check(X_train, y_train)
        self._check(X_val, y_val, channels=X_train.shape[2])
        try:
            with deterministic_algorithms():
                loop, resumed_from = self._fit(X_train, y_train, X_val, y_val,
                                               checkpoint_dir, on_epoch_end, step_hook)
        except BaseException:
            self.model = self.norm = None  # no half-trained model is left to predict with
            raise
        return TrainingReport(
            epochs_run=len(loop.history), best_epoch=loop.best_epoch, best_val_loss=loop.best_val,
            history=list(loop.history), nan_restarts=loop.nan_restarts,
            oom_halvings=loop.oom_halvings, resumed_from_epoch=resumed_from,
            config_hash=cfg.config_hash(), device=str(self.device),
            seconds=time.perf_counter() - started,
        )

    def _fit(self, X_train: np.ndarray, y_train: np.ndarray, X_val: np.ndarray, y_val: np.ndarray,
             checkpoint_dir: str | os.PathLike[str] | None,
             on_epoch_end: Callable[[EpochRecord], None] | None,
             step_hook: StepHook | None) -> tuple[RunState, int | None]:
        """The training loop proper; returns the final run state and the epoch resumed from."""
        cfg = self.config
        seed_everything(cfg.seed)
        self.norm = NormStats.from_training(X_train, y_train, self.device)
        self.model = self._build_model(X_train.shape[2]).to(self.device)
        opt = torch.optim.AdamW(self.model.parameters(), lr=cfg.lr, weight_decay=cfg.weight_decay)
        sched = ReduceLROnPlateau(opt, "min", cfg.lr_factor, cfg.lr_patience, min_lr=cfg.min_lr)
        store, resumed = None, None
        if checkpoint_dir is not None:
            data_hash = data_fingerprint(X_train, y_train, X_val, y_val)
            store = CheckpointStore(checkpoint_dir, cfg.config_hash(), data_hash)
            resumed = store.resume(self.model, opt, sched)
        initial = cpu_clone(self.model.state_dict())
        loop = resumed or RunState(cfg.batch_size, capture_rng(self.device), initial)
        resumed_from = resumed.history[-1].epoch if resumed else None
        train, val = self._tensors(X_train, y_train), self._tensors(X_val, y_val)
        while not loop.done(cfg.max_epochs, cfg.patience):
            record = self._epoch_with_recovery(loop, opt, train, val, step_hook)
            if record is None:
                continue  # rolled back; retry the same epoch with a lower lr / smaller batch
            sched.step(record.val_loss)
            loop.add(record, self.model.state_dict(), cfg.min_delta)
            # The next epoch starts from this RNG state, whatever the callback draws.
            loop.rng = capture_rng(self.device)
            if store is not None:
                store.save_run(self.model, opt, sched, loop)
            if on_epoch_end is not None:
                on_epoch_end(record)
        self.model.load_state_dict(loop.best_state)
        self.model.eval()
        return loop, resumed_from

    def _build_model(self, n_channels: int) -> TSMixer:
        """The network to train, built right after seeding (bench/train_bench.py overrides it to
        train another implementation through this same loop)."""
        return TSMixer.from_config(self.config, n_channels)

    def _epoch_with_recovery(self, loop: RunState, opt: torch.optim.Optimizer, train: Batches,
                             val: Batches, step_hook: StepHook | None) -> EpochRecord | None:
        """One epoch, or ``None`` after rolling back to its start (non-finite loss or CUDA OOM)."""
        cfg, epoch = self.config, len(loop.history)
        assert self.model is not None
        # The epoch-start state equals the last checkpoint: it is the "last good state".
        start_model, start_opt = cpu_clone(self.model.state_dict()), cpu_clone(opt.state_dict())
        restore_rng(loop.rng, self.device)
        lr = opt.param_groups[0]["lr"]
        failure: TrainingDivergedError | None = None
        oom: str | None = None
        try:
            train_loss = self._train_epoch(epoch, loop.batch_size, opt, train, step_hook)
            val_loss = self._evaluate(val, loop.batch_size)
            if not math.isfinite(val_loss):
                raise TrainingDivergedError(epoch, "validation", lr)
            return EpochRecord(epoch, train_loss, val_loss, lr, loop.batch_size)
        except TrainingDivergedError as err:
            failure = err
        except torch.cuda.OutOfMemoryError as err:
            oom = str(err)  # handled outside the except block so its traceback frees GPU tensors
        self.model.load_state_dict(start_model)
        opt.load_state_dict(start_opt)
        if failure is not None:
            loop.nan_restarts += 1
            if loop.nan_restarts > cfg.max_nan_retries:
                restarts = loop.nan_restarts - 1
                raise TrainingDivergedError(epoch, failure.step, failure.lr, restarts) from None
            for group in opt.param_groups:
                group["lr"] = failure.lr / 2
            return None
        if self.device.type == "cuda":
            torch.cuda.empty_cache()
        if loop.oom_halvings >= cfg.max_oom_retries or loop.batch_size == 1:
            raise TrainingOutOfMemoryError(
                f"CUDA out of memory at epoch {epoch} with batch size {loop.batch_size} after "
                f"{loop.oom_halvings} halvings (max_oom_retries={cfg.max_oom_retries}): {oom}"
            )
        loop.oom_halvings += 1
        loop.batch_size //= 2
        return None

    def _train_epoch(self, epoch: int, batch_size: int, opt: torch.optim.Optimizer, data: Batches,
                     step_hook: StepHook | None) -> float:
        cfg, model = self.config, self.model
        assert model is not None
        model.train()
        x_all, y_all = data
        # The order depends on (seed, epoch) only, so a resumed or retried epoch sees the same one.
        shuffle = torch.Generator().manual_seed(cfg.seed * 1_000_003 + epoch)
        order = torch.randperm(len(x_all), generator=shuffle).to(self.device)
        total = 0.0
        for step, begin in enumerate(range(0, len(order), batch_size)):
            idx = order[begin:begin + batch_size]
            lr = opt.param_groups[0]["lr"]
            if step_hook is not None:
                step_hook(StepContext(epoch, step, batch_size, lr, model))
            loss = cfg.horizon_loss(model(x_all[idx]), y_all[idx])
            value = loss.item()  # the step's one host sync: the finiteness check needs it anyway
            if not math.isfinite(value):
                raise TrainingDivergedError(epoch, step, lr)
            opt.zero_grad(set_to_none=True)
            loss.backward()
            if cfg.grad_clip_norm is not None:
                torch.nn.utils.clip_grad_norm_(model.parameters(), cfg.grad_clip_norm)
            opt.step()
            total += value * len(idx)
        return total / len(order)

    @torch.inference_mode()
    def _evaluate(self, data: Batches, batch_size: int) -> float:
        x_all, y_all = data
        pred = self._forward_all(x_all, batch_size, scaled=True)
        return self.config.horizon_loss(pred, y_all).item()

    @torch.inference_mode()
    def _forward_all(self, x_all: torch.Tensor, batch_size: int, scaled: bool = False) -> torch.Tensor:
        """Eval-mode forecasts for windows (raw, or already ``scaled``), in standardised label
        units, on the device."""
        assert self.model is not None and self.norm is not None
        if self.model.training:  # eval() walks every submodule: a third of a 1-window predict
            self.model.eval()
        outputs = []
        for begin in range(0, len(x_all), batch_size):
            batch = x_all[begin:begin + batch_size].to(self.device)
            outputs.append(self.model(batch if scaled else self.norm.scale_inputs(batch)))
        if len(outputs) == 1:
            return outputs[0]  # one window or one batch (serving): no concatenation copy
        return torch.cat(outputs) if outputs else torch.zeros(0, len(self.config.horizons), device=self.device)

    def predict(self, X: np.ndarray, batch_size: int | None = None) -> np.ndarray:
        """Forecasts in basis points, ``(n, len(horizons))`` float32; eval mode, no grad."""
        if self.model is None or self.norm is None:
            raise RuntimeError("TSMixerRegressor is not fitted: call fit() or load()")
        self._check(X, None, channels=self.model.n_channels)
        x_all = torch.from_numpy(np.ascontiguousarray(X, dtype=np.float32))
        with deterministic_algorithms():
            scaled = self._forward_all(x_all, batch_size or self.config.batch_size)
        return self.norm.unscale_labels(scaled).cpu().numpy()

    def save(self, path: str | os.PathLike[str]) -> None:
        """One file: weights, canonical config JSON, normalisation stats, input channel count."""
        if self.model is None or self.norm is None:
            raise RuntimeError("nothing to save: the regressor is not fitted")
        save_artifact(
            path, config=self.config.to_json(), config_hash=self.config.config_hash(),
            n_channels=self.model.n_channels, norm=self.norm.to_payload(),
            state_dict=cpu_clone(self.model.state_dict()),
        )

    @classmethod
    def load(cls, path: str | os.PathLike[str],
             device: str | torch.device = "cpu") -> TSMixerRegressor:
        """Rebuild a fitted regressor from :meth:`save`'s file, on ``device``."""
        payload = load_artifact(path)
        regressor = cls(TSMixerConfig.model_validate_json(payload["config"]), device)
        regressor.norm = NormStats.from_payload(payload["norm"], regressor.device)
        model = TSMixer.from_config(regressor.config, payload["n_channels"])
        model.load_state_dict(payload["state_dict"])
        regressor.model = model.to(regressor.device).eval()
        return regressor

    def _tensors(self, X: np.ndarray, y: np.ndarray) -> Batches:
        """Inputs and labels standardised once per fit and moved to the device once.

        Standardising per batch repeated the same elementwise work every epoch and copied every
        batch to the device separately; elementwise, the result is identical either way.
        """
        assert self.norm is not None
        x = torch.from_numpy(np.ascontiguousarray(X, dtype=np.float32)).to(self.device)
        y_t = torch.tensor(y, dtype=torch.float32, device=self.device)  # small; the caller's may be read-only
        return self.norm.scale_inputs(x), self.norm.scale_labels(y_t)

    def _check(self, X: np.ndarray, y: np.ndarray | None, channels: int | None = None) -> None:
        cfg = self.config
        if X.ndim != 3 or X.shape[1] != cfg.lookback:
            raise ValueError(f"X must be (n, {cfg.lookback}, channels), got {X.shape}")
        if channels is not None and X.shape[2] != channels:
            raise ValueError(f"X has {X.shape[2]} channels, the model is fitted on {channels}")
        if np.isinf(X).any():
            raise ValueError("X contains +/-inf: only NaN is accepted as 'missing'")
        if y is not None and (X.shape[0] == 0 or y.shape != (X.shape[0], len(cfg.horizons))):
            raise ValueError(f"y must be ({X.shape[0]} > 0, {len(cfg.horizons)}), got {y.shape}")
        if y is not None and not np.isfinite(y).all():
            raise ValueError("y contains NaN or inf: drop rows without a label before fit")
