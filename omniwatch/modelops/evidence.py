"""What the rules judge a model on: metrics of one model over one window of matured predictions.

``score_window`` turns a frame of matured predictions into a ``WindowMetrics``; the gate, the
rollout and the rollback rules only ever see these typed records.

Units: ``forecast`` and ``realised`` share one unit, basis points by default (the live
``horizon_predictions``); ``net_pnl`` and ``max_drawdown`` are then in bps too. Pass
``unit_bps=1e4`` when the frame holds log returns (the walk-forward convention of
``omniwatch.ml.metrics``), so that costs given in bps are converted into that unit.
"""

from __future__ import annotations

import math
from datetime import datetime
from typing import TypeGuard

import numpy as np
import pandas as pd
from pydantic import BaseModel, ConfigDict

from omniwatch.modelops.skill import HorizonSkill

_KEYS = ["target", "as_of_ts"]


class WindowMetrics(BaseModel):
    """One model over one window. A metric that cannot be computed is None (or NaN)."""

    model_config = ConfigDict(frozen=True)

    label: str
    start: datetime | None = None
    end: datetime | None = None
    n: int = 0          # matured predictions with a forecast
    n_errors: int = 0   # scorings that failed (no forecast)
    ic: float | None = None
    rank_ic: float | None = None
    hit_rate: float | None = None
    net_pnl: float | None = None
    max_drawdown: float | None = None
    turnover: float | None = None

    @property
    def error_rate(self) -> float:
        total = self.n + self.n_errors
        return self.n_errors / total if total else 0.0


class ModelEvidence(BaseModel):
    """Everything the gate knows about one version: walk-forward windows (oldest first) and shadow."""

    model_config = ConfigDict(frozen=True)

    version: str
    walk_forward: list[WindowMetrics]
    shadow: WindowMetrics | None = None
    skill: HorizonSkill | None = None  # the verdict at the gate's horizon (None: not judged)


def finite(value: float | None) -> TypeGuard[float]:
    """True for a real number (not None, not NaN, not inf)."""
    return value is not None and math.isfinite(value)


def _corr(x: np.ndarray, y: np.ndarray) -> float | None:
    if len(x) < 3 or np.ptp(x) == 0 or np.ptp(y) == 0:
        return None
    return float(np.corrcoef(x, y)[0, 1])


def score_window(
    frame: pd.DataFrame,
    horizon: str,
    *,
    label: str,
    start: datetime | None = None,
    end: datetime | None = None,
    fee_bps: float = 5.0,
    slippage_bps: float = 5.0,
    unit_bps: float = 1.0,
) -> WindowMetrics:
    """Metrics of ONE model at one ``horizon`` over a set of matured predictions.

    ``frame``: target, as_of_ts, forecast, realised[, error]. A row with an ``error`` or a
    non-finite forecast is a failed scoring (``n_errors``); a row with a forecast but no finite
    realised value has not matured and is ignored. Over the remaining ``n`` rows:

    * IC / Rank IC: Pearson / Spearman of forecast and realised (None below 3 pairs or without
      variance);
    * hit rate: share of rows with ``sign(forecast) == sign(realised)`` among nonzero forecasts;
    * positions are ``sign(forecast)`` per target in time order, starting flat; turnover at a row is
      ``|pos_t - pos_{t-1}|``; pnl at a row is ``pos_t * realised - turnover_t * cost`` with
      ``cost = (fee_bps + slippage_bps) / unit_bps``; ``net_pnl`` is its sum;
    * max drawdown: the lowest value of ``cumulative pnl - running peak`` (peak starts at 0), over
      pnl summed per ``as_of_ts``; ``<= 0``, additive in the same unit;
    * turnover: total position change / ``n``.

    ``horizon`` only names what was scored (the frame must already hold that horizon's rows).
    """
    missing = {"target", "as_of_ts", "forecast", "realised"} - set(frame.columns)
    if missing:
        raise ValueError(f"score_window({horizon}): missing columns {sorted(missing)}")
    forecast = pd.to_numeric(frame["forecast"], errors="coerce").to_numpy(dtype=float)
    realised = pd.to_numeric(frame["realised"], errors="coerce").to_numpy(dtype=float)
    failed = ~np.isfinite(forecast)
    if "error" in frame.columns:
        failed |= frame["error"].notna().to_numpy()
    matured = ~failed & np.isfinite(realised)
    rows = frame.loc[matured, _KEYS].reset_index(drop=True).assign(
        forecast=forecast[matured], realised=realised[matured])
    n = len(rows)
    metrics = WindowMetrics(label=label, start=start, end=end, n=n, n_errors=int(failed.sum()))
    if n == 0:
        return metrics

    f, r = rows["forecast"].to_numpy(), rows["realised"].to_numpy()
    ic = _corr(f, r)
    rank_ic = _corr(pd.Series(f).rank().to_numpy(), pd.Series(r).rank().to_numpy())
    nonzero = f != 0
    hit_rate = float((np.sign(f[nonzero]) == np.sign(r[nonzero])).mean()) if nonzero.any() else None

    rows = rows.sort_values(_KEYS[::-1], kind="stable")
    rows["position"] = np.sign(rows["forecast"])
    rows["traded"] = rows.groupby("target")["position"].diff().fillna(rows["position"]).abs()
    cost = (fee_bps + slippage_bps) / unit_bps
    rows["pnl"] = rows["position"] * rows["realised"] - rows["traded"] * cost
    cumulative = rows.groupby("as_of_ts")["pnl"].sum().cumsum().to_numpy()
    peak = np.maximum.accumulate(np.concatenate([[0.0], cumulative]))[1:]
    return metrics.model_copy(update={
        "ic": ic, "rank_ic": rank_ic, "hit_rate": hit_rate,
        "net_pnl": float(rows["pnl"].sum()),
        "max_drawdown": float(min(0.0, (cumulative - peak).min())),
        "turnover": float(rows["traded"].sum() / n),
    })


def paired(candidate_frame: pd.DataFrame, reference_frame: pd.DataFrame) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Both frames restricted to the (target, as_of_ts) keys present in both.

    Candidate and champion are then judged on the same hours. A failed scoring is still a row, so
    the candidate's errors keep counting wherever the reference has a row for that hour.
    """
    common = candidate_frame[_KEYS].drop_duplicates().merge(reference_frame[_KEYS].drop_duplicates(), on=_KEYS)
    keep = pd.MultiIndex.from_frame(common)

    def restrict(frame: pd.DataFrame) -> pd.DataFrame:
        return frame[pd.MultiIndex.from_frame(frame[_KEYS]).isin(keep)].reset_index(drop=True)

    return restrict(candidate_frame), restrict(reference_frame)
