"""LightGBM on the point-in-time rows: one regressor per horizon, explanations from pred_contrib."""

from __future__ import annotations

import json
from dataclasses import dataclass, field

import lightgbm as lgb
import pandas as pd
from pydantic import BaseModel, ConfigDict


class LightGBMConfig(BaseModel):
    """Frozen LightGBM settings (logged to MLflow as JSON with their hash)."""

    model_config = ConfigDict(frozen=True)

    num_leaves: int = 15
    learning_rate: float = 0.03
    min_data_in_leaf: int = 200
    feature_fraction: float = 0.8
    bagging_fraction: float = 0.8
    bagging_freq: int = 1
    lambda_l2: float = 10.0
    max_rounds: int = 400
    early_stopping_rounds: int = 30
    # The last share of the training rows (after a purge gap) decides early stopping.
    validation_share: float = 0.2
    num_threads: int = 1
    seed: int = 7

    def params(self) -> dict:
        return {
            "objective": "regression", "metric": "l2", "verbosity": -1,
            "num_leaves": self.num_leaves, "learning_rate": self.learning_rate,
            "min_data_in_leaf": self.min_data_in_leaf, "feature_fraction": self.feature_fraction,
            "bagging_fraction": self.bagging_fraction, "bagging_freq": self.bagging_freq,
            "lambda_l2": self.lambda_l2, "num_threads": self.num_threads, "seed": self.seed,
            "deterministic": True, "force_row_wise": True,
        }


@dataclass
class LightGBMModel:
    """One booster per horizon label (same feature columns for all)."""

    features: list[str]
    boosters: dict[str, lgb.Booster] = field(default_factory=dict)
    best_rounds: dict[str, int] = field(default_factory=dict)

    def predict(self, X: pd.DataFrame) -> pd.DataFrame:
        data = X[self.features].to_numpy(dtype=float)
        return pd.DataFrame({h: b.predict(data, num_threads=1) for h, b in self.boosters.items()}, index=X.index)

    def contributions(self, X: pd.DataFrame, horizon: str) -> pd.DataFrame:
        """Per-feature SHAP-style contributions (LightGBM ``pred_contrib``) plus the bias column."""
        raw = self.boosters[horizon].predict(X[self.features].to_numpy(dtype=float), pred_contrib=True)
        return pd.DataFrame(raw, columns=[*self.features, "bias"], index=X.index)

    def importances(self) -> pd.DataFrame:
        """Total gain per feature and horizon."""
        return pd.DataFrame({h: b.feature_importance("gain") for h, b in self.boosters.items()},
                            index=self.features)

    def to_json(self) -> str:
        return json.dumps({"features": self.features, "best_rounds": self.best_rounds,
                           "boosters": {h: b.model_to_string() for h, b in self.boosters.items()}})

    @classmethod
    def from_json(cls, text: str) -> LightGBMModel:
        raw = json.loads(text)
        return cls(raw["features"], {h: lgb.Booster(model_str=s) for h, s in raw["boosters"].items()},
                   raw["best_rounds"])


def fit_lightgbm(X: pd.DataFrame, Y: pd.DataFrame, times: pd.Series, features: list[str],
                 config: LightGBMConfig, purge: pd.Timedelta) -> LightGBMModel:
    """Fit one booster per column of ``Y``; early stopping on the last ``validation_share`` of
    time, with training rows whose label window reaches into it purged."""
    model = LightGBMModel(list(features))
    cut = times.quantile(1 - config.validation_share)
    train = (times + purge <= cut).to_numpy()
    valid = (times > cut).to_numpy()
    for horizon in Y.columns:
        ok = Y[horizon].notna().to_numpy()
        dtrain = lgb.Dataset(X.loc[train & ok, features].to_numpy(dtype=float), Y.loc[train & ok, horizon].to_numpy())
        dvalid = lgb.Dataset(X.loc[valid & ok, features].to_numpy(dtype=float), Y.loc[valid & ok, horizon].to_numpy(),
                             reference=dtrain)
        booster = lgb.train(config.params(), dtrain, num_boost_round=config.max_rounds, valid_sets=[dvalid],
                            callbacks=[lgb.early_stopping(config.early_stopping_rounds, verbose=False)])
        best = max(1, booster.best_iteration or config.max_rounds)
        # Refit on every labelled row with the chosen number of rounds.
        dall = lgb.Dataset(X.loc[ok, features].to_numpy(dtype=float), Y.loc[ok, horizon].to_numpy())
        model.boosters[horizon] = lgb.train(config.params(), dall, num_boost_round=best)
        model.best_rounds[horizon] = best
    return model

