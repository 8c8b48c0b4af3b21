"""The training protocol shared by both models: purged K-fold, walk-forward, final fit.

- Purged K-fold with embargo (purge = the longest label horizon) gives out-of-fold predictions:
  they choose the ensemble weights of the registered model.
- Walk-forward (expanding window, gap >= horizon, one calendar month per test window) gives the
  out-of-sample figures. The ensemble weights applied to a walk-forward month are fitted on the
  earlier walk-forward months only (equal weights for the first), so no figure uses the future.
- The final model is fitted on every labelled row.
"""

from __future__ import annotations

import hashlib
import json
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd
from pydantic import BaseModel, ConfigDict, Field

from omniwatch import progress
from omniwatch.features.liquid import FEATURES
from omniwatch.ml.dataset import LABEL_BPS
from omniwatch.ml.lgbm import LightGBMConfig
from omniwatch.ml.validation import PurgedKFold, walk_forward

PRED_COLUMNS = tuple(f"pred_{c[2:]}" for c in LABEL_BPS)  # pred_1h, pred_4h, pred_24h


def default_tsmixer() -> dict[str, Any]:
    # Sized for one CPU core: the demo trains eight of these in its time budget. mix_steps=24:
    # TSMixerx's early temporal projection (168 h -> 24 steps before mixing): 2.2x the training
    # throughput of mixing over all 168 steps and of neuralforecast's TSMixerx, at a lower
    # validation error than both (bench/train_bench.py, README "Training speed").
    return dict(lookback=168, path_steps=24, mix_steps=24, horizons=(1, 4, 24), n_blocks=2, d_ff=32, dropout=0.1,
                revin=False, lr=1e-3, batch_size=256, max_epochs=6, patience=2, lr_patience=1, seed=11)


class TrainingConfig(BaseModel):
    """Everything that decides a liquid training run; its JSON and hash are logged to MLflow."""

    model_config = ConfigDict(frozen=True)

    kfold_splits: int = 3
    embargo_hours: int = 24
    purge_hours: int = 24          # >= the longest label horizon
    wf_test_windows: int = 4
    wf_window: str = "MS"
    min_train_days: int = 120
    window_stride_hours: int = 3   # sequence-model training windows: every 3rd hour
    validation_share: float = 0.15
    fee_bps: float = 5.0
    slippage_bps: float = 5.0
    null_shifts: int = 20
    # The walk-forward's "model_sized" row: forecasts held as tranches of their own horizon
    # (omniwatch.trading.sizing), volatility-scaled, with a no-trade band in weight.
    sizing_band: float = 0.05
    sizing_target_annual_vol: float = 0.40
    tsmixer: dict[str, Any] = Field(default_factory=default_tsmixer)
    lightgbm: LightGBMConfig = Field(default_factory=LightGBMConfig)

    def to_json(self) -> str:
        return json.dumps(self.model_dump(mode="json"), sort_keys=True, separators=(",", ":"))

    def config_hash(self) -> str:
        return hashlib.sha256(self.to_json().encode()).hexdigest()

    @property
    def purge(self) -> pd.Timedelta:
        return pd.Timedelta(hours=self.purge_hours)


Fitter = Callable[[np.ndarray], Any]                      # train positions -> fitted model
Predictor = Callable[[Any, np.ndarray], np.ndarray]      # (model, positions) -> (n, 3) bps


@dataclass(frozen=True)
class EpochPoint:
    """One epoch of one fit: ``fit`` is "kfold-0", a walk-forward month ("2024-03") or "final"."""

    fit: str
    epoch: int            # from 0
    train_loss: float
    val_loss: float
    lr: float
    timestamp_ms: int     # wall clock when the epoch ended


@dataclass
class EpochCurves:
    """The epochs of every fit in a protocol run, in order: what MLflow draws as loss curves.
    :func:`run_protocol` names the fit a :class:`CurveFitter` is about to run."""

    fit: str = "final"
    points: list[EpochPoint] = field(default_factory=list)


@dataclass
class CurveFitter:
    """A :data:`Fitter` that trains by epochs and records them in ``curves``."""

    fit: Fitter
    curves: EpochCurves

    def __call__(self, positions: np.ndarray) -> Any:
        return self.fit(positions)


@dataclass
class ModelRun:
    """A model's out-of-fold and walk-forward predictions, its final fit, and when it began."""

    name: str
    oof: pd.DataFrame
    walk_forward: pd.DataFrame
    final: Any
    folds: list[dict] = field(default_factory=list)
    started_ms: int | None = None                    # wall clock (epoch ms) when the protocol began
    epochs: list[EpochPoint] = field(default_factory=list)


def _frame(frame: pd.DataFrame, positions: np.ndarray, preds: np.ndarray, fold: str) -> pd.DataFrame:
    out = frame.iloc[positions][["symbol", "as_of_ts"]].copy()
    out["position"] = positions
    out[list(PRED_COLUMNS)] = preds
    out["fold"] = fold
    return out


def run_protocol(name: str, frame: pd.DataFrame, fit: Fitter, predict: Predictor,
                 config: TrainingConfig, log: Callable[[str], None] = lambda _: None) -> ModelRun:
    started_ms = int(time.time() * 1000)
    curves = fit.curves if isinstance(fit, CurveFitter) else EpochCurves()
    curves.points.clear()  # a fitter used again records this run's epochs only

    def fit_named(label: str, positions: np.ndarray) -> Any:
        curves.fit = label
        return fit(positions)

    times = frame["as_of_ts"]
    labelled = frame[list(LABEL_BPS)].notna().all(axis=1).to_numpy()
    oof = []
    kfold = PurgedKFold(config.kfold_splits, config.purge, pd.Timedelta(hours=config.embargo_hours))
    for k, (train, test) in enumerate(kfold.split(times)):
        model = fit_named(f"kfold-{k}", train[labelled[train]])
        oof.append(_frame(frame, test, predict(model, test), f"kfold-{k}"))
        log(f"{name}: purged fold {k + 1}/{config.kfold_splits} done")
    folds = walk_forward(times, horizon=config.purge, gap=config.purge,
                         min_train=pd.Timedelta(days=config.min_train_days),
                         test_windows=config.wf_test_windows, window=config.wf_window)
    wf, fold_info = [], []
    for i, fold in enumerate(folds, start=1):
        model = fit_named(fold.name, fold.train_idx[labelled[fold.train_idx]])
        wf.append(_frame(frame, fold.test_idx, predict(model, fold.test_idx), fold.name))
        fold_info.append({"fold": fold.name, "train_end": fold.train_end.isoformat(),
                          "test_start": fold.test_start.isoformat(), "test_end": fold.test_end.isoformat(),
                          "train_rows": int(labelled[fold.train_idx].sum()), "test_rows": len(fold.test_idx)})
        log(f"{name}: walk-forward {fold.name} done")
        progress.report("walk-forward folds", i, len(folds))
    final = fit_named("final", np.flatnonzero(labelled))
    return ModelRun(name, pd.concat(oof, ignore_index=True), pd.concat(wf, ignore_index=True), final, fold_info,
                    started_ms=started_ms, epochs=list(curves.points))


# ----------------------------------------------------------------------------- the two models
def lightgbm_functions(frame: pd.DataFrame, config: TrainingConfig,
                       features: Sequence[str] = FEATURES) -> tuple[Fitter, Predictor]:
    from omniwatch.ml.lgbm import fit_lightgbm

    X, Y = frame[list(features)], frame[list(LABEL_BPS)]

    def fit(pos: np.ndarray):
        return fit_lightgbm(X.iloc[pos], Y.iloc[pos], frame["as_of_ts"].iloc[pos], list(features),
                            config.lightgbm, config.purge)

    def predict(model, pos: np.ndarray) -> np.ndarray:
        return model.predict(X.iloc[pos]).to_numpy(dtype=float)

    return fit, predict


def tsmixer_functions(frame: pd.DataFrame, config: TrainingConfig, device: str,
                      checkpoint_root: str | None = None) -> tuple[Fitter, Predictor]:
    from omniwatch.ml.checkpoints import EpochRecord
    from omniwatch.ml.dataset import make_windows
    from omniwatch.ml.trainer import TSMixerConfig, TSMixerRegressor

    ts_config = TSMixerConfig(**config.tsmixer)
    hours = frame["as_of_ts"].dt.hour.to_numpy()
    times = frame["as_of_ts"]
    curves = EpochCurves()

    def on_epoch_end(record: EpochRecord) -> None:
        curves.points.append(EpochPoint(curves.fit, record.epoch, float(record.train_loss), float(record.val_loss),
                                        float(record.lr), int(time.time() * 1000)))
        progress.report("TSMixer epochs", record.epoch + 1, ts_config.max_epochs)

    def fit(pos: np.ndarray) -> TSMixerRegressor:
        pos = pos[hours[pos] % config.window_stride_hours == 0]
        cut = times.iloc[pos].quantile(1 - config.validation_share)
        t = times.iloc[pos]
        train, val = pos[(t + config.purge <= cut).to_numpy()], pos[(t > cut).to_numpy()]
        wt, wv = make_windows(frame, ts_config.lookback, train), make_windows(frame, ts_config.lookback, val)
        model = TSMixerRegressor(ts_config, device=device)
        # One checkpoint folder per fit (named by its rows): a killed run resumes each fit.
        folder = None
        if checkpoint_root is not None:
            folder = f"{checkpoint_root}/{hashlib.sha256(pos.tobytes()).hexdigest()[:16]}"
        model.fit(wt.X, wt.y, wv.X, wv.y, checkpoint_dir=folder, on_epoch_end=on_epoch_end)
        return model

    def predict(model: TSMixerRegressor, pos: np.ndarray) -> np.ndarray:
        return model.predict(make_windows(frame, ts_config.lookback, pos).X).astype(float)

    return CurveFitter(fit, curves), predict


# ----------------------------------------------------------------------------- ensemble weights
def fit_weight(y: np.ndarray, a: np.ndarray, b: np.ndarray) -> float:
    """Weight w in [0, 1] of ``a`` in ``w*a + (1-w)*b`` minimising squared error (closed form)."""
    ok = np.isfinite(y) & np.isfinite(a) & np.isfinite(b)
    d = a[ok] - b[ok]
    denom = float(d @ d)
    if denom == 0.0:
        return 0.5
    return float(np.clip(((y[ok] - b[ok]) @ d) / denom, 0.0, 1.0))


def _merge(lgbm: pd.DataFrame, tsm: pd.DataFrame) -> pd.DataFrame:
    return lgbm.merge(tsm[["position", *PRED_COLUMNS]], on="position", suffixes=("_l", "_t"))


def _weights(frame: pd.DataFrame, merged: pd.DataFrame) -> dict[str, float]:
    y = frame[list(LABEL_BPS)].to_numpy(dtype=float)[merged["position"].to_numpy()]
    return {p: fit_weight(y[:, i], merged[f"{p}_l"].to_numpy(), merged[f"{p}_t"].to_numpy())
            for i, p in enumerate(PRED_COLUMNS)}


def ensemble_weights(frame: pd.DataFrame, lgbm: pd.DataFrame, tsm: pd.DataFrame) -> dict[str, float]:
    """LightGBM's weight per horizon, fitted on matching out-of-sample prediction rows."""
    return _weights(frame, _merge(lgbm, tsm))


def walk_forward_ensemble(frame: pd.DataFrame, lgbm: pd.DataFrame,
                          tsm: pd.DataFrame) -> tuple[pd.DataFrame, list[dict]]:
    """Ensemble walk-forward predictions, each month weighted by what earlier months showed."""
    merged = _merge(lgbm, tsm)
    parts, used = [], []
    months = list(dict.fromkeys(merged["fold"]))
    for i, month in enumerate(months):
        earlier = merged[merged["fold"].isin(months[:i])]
        weights = _weights(frame, earlier) if len(earlier) else dict.fromkeys(PRED_COLUMNS, 0.5)
        cur = merged[merged["fold"] == month]
        out = cur[["symbol", "as_of_ts", "position", "fold"]].copy()
        for p in PRED_COLUMNS:
            out[p] = weights[p] * cur[f"{p}_l"] + (1 - weights[p]) * cur[f"{p}_t"]
        parts.append(out)
        used.append({"fold": month, **{f"w_lightgbm_{p[5:]}": w for p, w in weights.items()}})
    return pd.concat(parts, ignore_index=True), used


def long_predictions(frame: pd.DataFrame, preds: pd.DataFrame) -> pd.DataFrame:
    """The long format metrics.summarize expects, realized labels and costs in log-return units."""
    rows = []
    base = frame.iloc[preds["position"].to_numpy()]
    for p, label in zip(PRED_COLUMNS, LABEL_BPS, strict=True):
        rows.append(pd.DataFrame({
            "as_of_ts": base["as_of_ts"].to_numpy(), "symbol": base["symbol"].to_numpy(),
            "horizon": int(p[5:-1]), "prediction": preds[p].to_numpy() / 1e4,
            "realized": base[label].to_numpy() / 1e4,
            "next_hour_return": base["next_hour_return"].to_numpy(),
            "funding": base["next_hour_funding"].to_numpy(), "fold": preds["fold"].to_numpy(),
            "vol": base["vol_24h"].to_numpy() if "vol_24h" in base else np.nan,
        }))
    out = pd.concat(rows, ignore_index=True)
    return out[out["realized"].notna() & out["next_hour_return"].notna()].reset_index(drop=True)
