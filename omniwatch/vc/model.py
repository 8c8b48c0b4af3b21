"""LightGBM classifier for "this company files a new Form D within 180 days", with honest metrics.

Rows are the point-in-time (entity, month-start) frame of :mod:`omniwatch.vc.features`. Validation
is time-ordered and purged: the model trains on ``as_of < cut - horizon`` (every training label is
known before the first validation date) and is scored on ``as_of >= cut``; a yearly walk-forward
(``omniwatch.ml.validation.walk_forward``) shows how much the figures move from year to year.
Every score is reported next to what needs no model: the base rate (random ranking: ROC AUC 0.5,
PR AUC and precision@k = base rate; Brier of the constant base rate) and a one-feature recency rule.
"""

from __future__ import annotations

import hashlib
import json
import time
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd
from pydantic import BaseModel, ConfigDict
from sklearn.metrics import average_precision_score, brier_score_loss, roc_auc_score

from omniwatch.ml.validation import label_windows_overlap, walk_forward
from omniwatch.vc.features import CATEGORICAL, FEATURES, HORIZON_DAYS

if TYPE_CHECKING:
    import lightgbm as lgb


class VCConfig(BaseModel):
    """Frozen settings of one vc model fit (logged as canonical JSON with its hash)."""

    model_config = ConfigDict(frozen=True)

    horizon_days: int = HORIZON_DAYS
    cut: str = "2022-01-01"             # first validation as_of; training ends horizon_days before
    min_prior_raises: int = 0           # population: rows with at least this many past raises
    features: tuple[str, ...] = tuple(FEATURES)
    categorical: tuple[str, ...] = tuple(CATEGORICAL)
    num_leaves: int = 31
    learning_rate: float = 0.05
    min_data_in_leaf: int = 200
    feature_fraction: float = 0.9
    bagging_fraction: float = 0.8
    bagging_freq: int = 1
    lambda_l2: float = 10.0
    max_rounds: int = 400
    early_stopping_rounds: int = 30
    early_stopping_share: float = 0.2   # last share of training time (after a purge) for early stopping
    walk_forward_years: int = 4         # yearly test windows (most recent N); 0 = none
    min_train_years: int = 3
    num_threads: int = 1
    seed: int = 7

    def to_json(self) -> str:
        return json.dumps(self.model_dump(mode="json"), sort_keys=True, separators=(",", ":"))

    def config_hash(self) -> str:
        return hashlib.sha256(self.to_json().encode()).hexdigest()

    def params(self) -> dict[str, Any]:
        return {"objective": "binary", "metric": "binary_logloss", "verbosity": -1,
                "num_leaves": self.num_leaves, "learning_rate": self.learning_rate,
                "min_data_in_leaf": self.min_data_in_leaf, "feature_fraction": self.feature_fraction,
                "bagging_fraction": self.bagging_fraction, "bagging_freq": self.bagging_freq,
                "lambda_l2": self.lambda_l2, "num_threads": self.num_threads, "seed": self.seed,
                "deterministic": True, "force_row_wise": True}


@dataclass(frozen=True, eq=False)
class VCModelResult:
    """The fitted booster, validation metrics, decile calibration table, validation predictions
    (entity_id, as_of, label, prediction and the recency rule's score), per-year walk-forward
    metrics, the feature list, and when the fit began (epoch ms: the MLflow run's start)."""

    booster: lgb.Booster
    metrics: dict[str, float]
    calibration: pd.DataFrame
    predictions: pd.DataFrame
    walk_forward: pd.DataFrame
    features: list[str]
    config: VCConfig
    started_ms: int | None = None


# ----------------------------------------------------------------------------- metrics
def roc_auc(y: Any, score: Any) -> float:
    """P(score of a random positive > that of a random negative); NaN with one class only."""
    y, s = np.asarray(y, float), np.asarray(score, float)
    if len(np.unique(y)) < 2:
        return float("nan")
    return float(roc_auc_score(y, s))


def pr_auc(y: Any, score: Any) -> float:
    """Average precision (scikit-learn): the area under the precision-recall step curve."""
    y, s = np.asarray(y, float), np.asarray(score, float)
    if (y == 1).sum() == 0:
        return float("nan")
    return float(average_precision_score(y, s))


def precision_at_k(y: Any, score: Any, k: int) -> float:
    """Share of positives among the k highest scores (ties kept in input order, so deterministic)."""
    y, s = np.asarray(y, float), np.asarray(score, float)
    k = int(min(max(k, 1), len(y)))
    return float(y[np.argsort(-s, kind="mergesort")[:k]].mean()) if len(y) else float("nan")


def brier(y: Any, p: Any) -> float:
    return float(brier_score_loss(np.asarray(y, float), np.asarray(p, float)))


def calibration_table(y: Any, p: Any, n_bins: int = 10) -> pd.DataFrame:
    """Equal-count bins of the prediction (deciles by default): mean predicted vs observed rate."""
    y, p = np.asarray(y, float), np.asarray(p, float)
    order = np.argsort(p, kind="mergesort")
    bins = np.empty(len(p), int)
    bins[order] = np.arange(len(p)) * n_bins // max(len(p), 1)
    frame = pd.DataFrame({"bin": bins, "p": p, "y": y})
    return frame.groupby("bin").agg(
        n=("y", "size"), mean_predicted=("p", "mean"), observed_rate=("y", "mean"),
        min_predicted=("p", "min"), max_predicted=("p", "max")).reset_index()


def classification_metrics(y: Any, p: Any, train_rate: float | None = None) -> dict[str, float]:
    """The scores of one prediction set, each beside its no-skill reference."""
    y, p = np.asarray(y, float), np.asarray(p, float)
    rate = float(y.mean())
    out = {"n": float(len(y)), "base_rate": rate, "roc_auc": roc_auc(y, p), "pr_auc": pr_auc(y, p),
           "precision_at_1pct": precision_at_k(y, p, round(0.01 * len(y))),
           "precision_at_5pct": precision_at_k(y, p, round(0.05 * len(y))),
           "precision_at_100": precision_at_k(y, p, 100), "brier": brier(y, p),
           "brier_base_rate": rate * (1 - rate)}  # the constant base rate, known only afterwards
    out["brier_skill"] = 1 - out["brier"] / out["brier_base_rate"] if rate not in (0.0, 1.0) else float("nan")
    if train_rate is not None:  # the constant a forecaster could actually have used
        out["brier_train_rate"] = brier(y, np.full(len(y), train_rate))
    return out


def recency_score(frame: pd.DataFrame) -> np.ndarray:
    """The no-model baseline: the more recent the last raise, the likelier the next one."""
    return -frame["days_since_last_raise"].fillna(1e6).to_numpy(float)


# ----------------------------------------------------------------------------- fitting
def _matrix(frame: pd.DataFrame, features: list[str]) -> np.ndarray:
    return frame[features].astype(float).to_numpy()  # nullable Int64 -> float with NaN


def _fit_booster(train: pd.DataFrame, config: VCConfig) -> lgb.Booster:
    """Early stopping on the last share of training time; rows whose label window reaches into
    that stretch are purged from the rows that fit the trees."""
    import lightgbm as lgb

    features = list(config.features)
    horizon = pd.Timedelta(days=config.horizon_days)
    times = train["as_of"]
    es_start = times.quantile(1 - config.early_stopping_share)
    fit, stop = train[times < es_start - horizon], train[times >= es_start]
    if len(fit) == 0 or fit["label"].nunique() < 2 or stop["label"].nunique() < 2:
        raise ValueError(f"too little training data before {es_start} to fit and early-stop")
    cats = [c for c in config.categorical if c in features]
    dfit = lgb.Dataset(_matrix(fit, features), fit["label"].to_numpy(), feature_name=features,
                       categorical_feature=cats, free_raw_data=False)
    dstop = lgb.Dataset(_matrix(stop, features), stop["label"].to_numpy(), reference=dfit)
    return lgb.train(config.params(), dfit, num_boost_round=config.max_rounds, valid_sets=[dstop],
                     callbacks=[lgb.early_stopping(config.early_stopping_rounds, verbose=False)])


def _predict(booster: lgb.Booster, frame: pd.DataFrame, features: list[str], threads: int) -> np.ndarray:
    return np.asarray(booster.predict(_matrix(frame, features), num_iteration=booster.best_iteration or None,
                                      num_threads=threads), dtype=float)


def _walk_forward(rows: pd.DataFrame, config: VCConfig) -> pd.DataFrame:
    """One refit per calendar year of test rows, training on rows whose label is known before it."""
    if config.walk_forward_years <= 0:
        return pd.DataFrame()
    horizon = pd.Timedelta(days=config.horizon_days)
    folds = walk_forward(rows["as_of"], horizon=horizon, gap=horizon + pd.Timedelta(days=1),
                         min_train=pd.Timedelta(days=365 * config.min_train_years),
                         test_windows=config.walk_forward_years, window="YS")
    out = []
    for fold in folds:
        train, test = rows.iloc[fold.train_idx], rows.iloc[fold.test_idx]
        pred = _predict(_fit_booster(train, config), test, list(config.features), config.num_threads)
        m = classification_metrics(test["label"], pred, float(train["label"].mean()))
        m["recency_roc_auc"] = roc_auc(test["label"], recency_score(test))
        out.append({"year": fold.name[:4], **m})
    return pd.DataFrame(out)


def fit_vc_model(frame: pd.DataFrame, config: VCConfig | None = None) -> VCModelResult:
    """Fit on ``as_of < cut - horizon``, validate on ``as_of >= cut`` (labelled rows only)."""
    started_ms = int(time.time() * 1000)
    config = config or VCConfig()
    features = list(config.features)
    rows = frame[frame["label"].notna() & (frame["n_raises_total"] >= config.min_prior_raises)]
    rows = rows.sort_values(["as_of", "entity_id"], kind="mergesort").reset_index(drop=True)
    cut, horizon = pd.Timestamp(config.cut, tz="UTC"), pd.Timedelta(days=config.horizon_days)
    train, valid = rows[rows["as_of"] < cut - horizon], rows[rows["as_of"] >= cut]
    if len(valid) == 0 or valid["label"].nunique() < 2:
        raise ValueError(f"no validation rows with both classes at or after {cut}")
    # Independent check of the purge: no training label window may overlap a validation one.
    if label_windows_overlap(train["as_of"].unique(), valid["as_of"].unique(), horizon):
        raise AssertionError("training and validation label windows overlap")
    booster = _fit_booster(train, config)
    pred = _predict(booster, valid, features, config.num_threads)
    train_rate = float(train["label"].mean())
    metrics = classification_metrics(valid["label"], pred, train_rate)
    recency = recency_score(valid)
    metrics |= {"n_train": float(len(train)), "base_rate_train": train_rate,
                "n_valid_entities": float(valid["entity_id"].nunique()),
                "best_iteration": float(booster.best_iteration),
                "recency_roc_auc": roc_auc(valid["label"], recency),
                "recency_pr_auc": pr_auc(valid["label"], recency)}
    wf = _walk_forward(rows, config)
    if len(wf):
        metrics |= {"wf_roc_auc_mean": float(wf["roc_auc"].mean()),
                    "wf_roc_auc_std": float(wf["roc_auc"].std()),
                    "wf_recency_roc_auc_mean": float(wf["recency_roc_auc"].mean())}
    predictions = valid[["entity_id", "as_of", "label"]].assign(prediction=pred, recency=recency)
    return VCModelResult(booster, metrics, calibration_table(valid["label"], pred), predictions.reset_index(drop=True),
                         wf, features, config, started_ms)


def vc_figures(result: VCModelResult) -> dict[str, Any]:
    """ROC, precision-recall and calibration of the validation predictions, the model beside the
    recency rule and no skill: ``{"vc_roc": fig, ...}`` for ``mlflow.log_figure`` under plots/."""
    from omniwatch.ml import plots

    valid = result.predictions
    y = valid["label"].to_numpy(float)
    scores = {"model": valid["prediction"].to_numpy(float), "recency rule": valid["recency"].to_numpy(float)}
    what = f"New Form D within {result.config.horizon_days} days"
    period = f"validation: as_of >= {result.config.cut}, {len(valid)} rows"
    return {
        "vc_roc": plots.roc_curves(y, scores, f"{what}: ROC\n{period}"),
        "vc_precision_recall": plots.pr_curves(y, scores, f"{what}: precision-recall\n{period}"),
        "vc_calibration": plots.calibration(result.calibration, f"{what}: calibration\n{period}"),
    }
