"""The liquid ensemble as one MLflow pyfunc: LightGBM + TSMixer, weights fitted out of sample.

Input: a frame of point-in-time feature rows (``symbol``, ``as_of_ts`` and the 15 features) that
holds, per symbol, at least the model's lookback of hourly rows before the rows to score. Output:
one row per input row with ``pred_1h, pred_4h, pred_24h`` (forward log returns, basis points) and
each component's own forecast, so a caller can see what the ensemble did.

It is logged as models-from-code: ``python_model=MODEL_CODE_PATH`` (``ensemble_model.py``, which
calls ``mlflow.models.set_model(LiquidEnsemble())``) with the three artifacts, never a pickled
instance; ``mlflow.pyfunc.load_model(uri).unwrap_python_model()`` returns a loaded ``LiquidEnsemble``.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd
from mlflow.pyfunc import PythonModel

from omniwatch.features.liquid import FEATURES
from omniwatch.ml.dataset import add_masks, make_windows
from omniwatch.ml.protocol import PRED_COLUMNS

ARTIFACTS = ("lightgbm", "tsmixer", "ensemble")
MODEL_CODE_PATH = Path(__file__).with_name("ensemble_model.py")  # the pyfunc's model-from-code file
CHUNK = 2048
DRILL_NAN_FORECASTS = "nan_forecasts"  # ensemble.json "drill": see omniwatch/drills.py


def save_components(folder: Path, lgbm, tsmixer, weights: dict[str, float], meta: dict) -> dict[str, str]:
    """Write the three artifacts and return the pyfunc ``artifacts`` mapping."""
    folder.mkdir(parents=True, exist_ok=True)
    paths = {"lightgbm": folder / "lightgbm.json", "tsmixer": folder / "tsmixer.pt",
             "ensemble": folder / "ensemble.json"}
    paths["lightgbm"].write_text(lgbm.to_json())
    tsmixer.save(paths["tsmixer"])
    paths["ensemble"].write_text(json.dumps({"weights_lightgbm": weights, "features": list(FEATURES),
                                             "lookback": tsmixer.config.lookback, **meta}, sort_keys=True))
    return {k: str(v) for k, v in paths.items()}


class LiquidEnsemble(PythonModel):
    """``w * LightGBM + (1 - w) * TSMixer`` per horizon."""

    def load_context(self, context) -> None:
        from omniwatch.ml.lgbm import LightGBMModel
        from omniwatch.ml.trainer import TSMixerRegressor

        self.lgbm = LightGBMModel.from_json(Path(context.artifacts["lightgbm"]).read_text())
        self.tsmixer = TSMixerRegressor.load(context.artifacts["tsmixer"])
        self.meta = json.loads(Path(context.artifacts["ensemble"]).read_text())

    def predict(self, context, model_input: pd.DataFrame, params=None) -> pd.DataFrame:
        return self.score(model_input)

    def score(self, frame: pd.DataFrame) -> pd.DataFrame:
        frame = frame.assign(as_of_ts=pd.to_datetime(frame["as_of_ts"], utc=True))
        frame = frame.sort_values(["as_of_ts", "symbol"]).reset_index(drop=True)
        scored = score_positions(self, frame, np.arange(len(frame)))
        return pd.concat([frame[["symbol", "as_of_ts"]], scored.reset_index(drop=True)], axis=1)


def score_positions(model: LiquidEnsemble, frame: pd.DataFrame, positions: np.ndarray) -> pd.DataFrame:
    """Ensemble and component forecasts (bps) of ``frame``'s rows at ``positions`` (each scored
    with its symbol's lookback taken from ``frame``); index = positions. The one place where the
    weights combine the two models: the pyfunc and the serving API both call it."""
    frame = add_masks(frame)
    positions = np.asarray(positions, dtype=int)
    lg = model.lgbm.predict(frame.iloc[positions]).to_numpy(dtype=float)
    lookback = model.meta["lookback"]
    ts = np.concatenate([model.tsmixer.predict(make_windows(frame, lookback, positions[i:i + CHUNK]).X)
                         for i in range(0, len(positions), CHUNK)] or [np.zeros((0, len(PRED_COLUMNS)))])
    ts = ts.astype(float)
    if model.meta.get("drill") == DRILL_NAN_FORECASTS:
        # A rollback drill: the same fitted components whose serving forecasts fail (non-finite)
        # for rows at or after ``drill_from`` (all rows without it), like an input feed that breaks
        # in production after the model passed its gate. Never set in training.
        broken = np.ones(len(positions), dtype=bool)
        if model.meta.get("drill_from"):
            start = pd.Timestamp(model.meta["drill_from"])
            start = start.tz_localize("UTC") if start.tzinfo is None else start.tz_convert("UTC")
            broken = (pd.to_datetime(frame["as_of_ts"].iloc[positions], utc=True) >= start).to_numpy(dtype=bool)
        lg, ts = lg.copy(), ts.copy()
        lg[broken], ts[broken] = np.nan, np.nan
    out = pd.DataFrame(index=positions)
    for i, p in enumerate(PRED_COLUMNS):
        w = model.meta["weights_lightgbm"][p]
        out[p] = w * lg[:, i] + (1 - w) * ts[:, i]
        out[f"lightgbm_{p}"] = lg[:, i]
        out[f"tsmixer_{p}"] = ts[:, i]
    return out
