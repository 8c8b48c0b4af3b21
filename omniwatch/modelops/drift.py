"""Feature, prediction and execution-slippage drift against a fixed training reference.

A feature (or the forecast) drifts only when both tests agree: PSI on bins fixed at training
time above ``thresholds.psi`` AND a two-sample KS p-value below ``thresholds.ks_pvalue``. PSI
alone flags small shifts on large samples; KS alone flags trivial shifts with many values.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import numpy.typing as npt
import pandas as pd
from pydantic import BaseModel, ConfigDict
from scipy.stats import ks_2samp

from omniwatch.modelops.records import Action, Decision, Outcome, Window
from omniwatch.modelops.thresholds import DriftThresholds

FORECAST = "forecast"
FILLED = frozenset({"filled", "partially_filled"})


class BinnedReference(BaseModel):
    """One variable at training time: interior bin cuts, the share per bin, a bounded sample.

    Only the interior cuts are stored (plain JSON has no infinity); ``edges`` adds -inf/+inf.
    A value equal to a cut falls into the upper bin.
    """

    model_config = ConfigDict(frozen=True)

    cuts: list[float]
    proportions: list[float]
    sample: list[float]
    n: int

    @property
    def edges(self) -> list[float]:
        return [-np.inf, *self.cuts, np.inf]

    def proportions_of(self, values: np.ndarray) -> np.ndarray:
        counts = np.bincount(np.searchsorted(self.cuts, values, side="right"), minlength=len(self.cuts) + 1)
        return counts / counts.sum() if counts.sum() else counts.astype(float)


class DriftReference(BaseModel):
    """The training reference of every feature and (under ``"forecast"``) of the forecast."""

    model_config = ConfigDict(frozen=True)

    features: dict[str, BinnedReference]
    forecast: BinnedReference | None = None


def _finite(values: Any) -> npt.NDArray[np.float64]:
    x: npt.NDArray[np.float64] = pd.to_numeric(pd.Series(values), errors="coerce").to_numpy(dtype=float)
    return x[np.isfinite(x)]


def _binned(values: Any, bins: int, sample: int, rng: np.random.Generator) -> BinnedReference:
    x = _finite(values)
    unique = np.unique(x)
    if len(unique) < bins:
        # Few distinct values (flags, small counts): one bin per value, cut halfway between them.
        cuts = (unique[:-1] + unique[1:]) / 2
    else:
        cuts = np.unique(np.quantile(x, np.linspace(0, 1, bins + 1)[1:-1]))
    kept = x if len(x) <= sample else rng.choice(x, size=sample, replace=False)
    ref = BinnedReference(cuts=cuts.tolist(), proportions=[], sample=np.sort(kept).tolist(), n=len(x))
    return ref.model_copy(update={"proportions": ref.proportions_of(x).tolist()})


def build_reference(
    features: pd.DataFrame, forecasts: pd.Series | None = None, bins: int = 10, sample: int = 2000, seed: int = 0
) -> DriftReference:
    """Bins from training-data quantiles (NaNs ignored) and a seeded sample of at most ``sample``."""
    rng = np.random.default_rng(seed)
    refs = {str(col): _binned(features[col], bins, sample, rng) for col in features.columns}
    return DriftReference(
        features=refs, forecast=None if forecasts is None else _binned(forecasts, bins, sample, rng))


def psi(reference_props: Any, current_props: Any, eps: float = 1e-4) -> float:
    """Population stability index: sum((cur - ref) * ln(cur / ref)), shares floored at ``eps``."""
    ref = np.clip(np.asarray(reference_props, float), eps, None)
    cur = np.clip(np.asarray(current_props, float), eps, None)
    return float(np.sum((cur - ref) * np.log(cur / ref)))


def feature_psi(ref: BinnedReference, values: Any) -> float:
    return psi(ref.proportions, ref.proportions_of(_finite(values)))


def ks_pvalue(ref: BinnedReference, values: Any) -> float:
    return float(ks_2samp(ref.sample, _finite(values)).pvalue)


def _variable(ref: BinnedReference | None, values: Any, t: DriftThresholds) -> dict[str, Any]:
    x = np.empty(0) if values is None else _finite(values)
    if ref is None or ref.n == 0 or len(x) < t.min_samples:
        return {"psi": None, "ks_pvalue": None, "n": len(x), "status": "insufficient"}
    value, p = feature_psi(ref, x), ks_pvalue(ref, x)
    return {"psi": value, "ks_pvalue": p, "n": len(x),
            "status": "drift" if value > t.psi and p < t.ks_pvalue else "stable"}


def _slippage(orders: pd.DataFrame | None, t: DriftThresholds) -> dict[str, Any]:
    # Only executed orders have a real slippage; a canceled/rejected row's value means nothing.
    if orders is None or orders.empty:
        x = np.empty(0)
    else:
        x = _finite(orders.loc[orders["status"].isin(FILLED), "slippage_bps"])
    if len(x) == 0 or len(x) < t.min_orders:
        return {"mean_bps": float(x.mean()) if len(x) else None, "n": len(x), "status": "inconclusive"}
    mean = float(x.mean())
    drifted = mean > t.assumed_slippage_bps + t.slippage_bps
    return {"mean_bps": mean, "n": len(x), "status": "drift" if drifted else "stable"}


def evaluate_drift(
    reference: DriftReference,
    current_features: pd.DataFrame,
    current_forecasts: pd.Series | None,
    orders: pd.DataFrame | None,
    thresholds: DriftThresholds,
    *,
    model_name: str,
    version: str | None,
    window: Window,
) -> Decision:
    """Drift of the reference's features, the forecast and the realised slippage over ``window``.

    ``drifting_share`` is the share of drifting features among those with enough current values.
    Features absent from ``current_features`` are insufficient; columns without a reference are
    ignored.
    """
    t = thresholds
    features = {name: _variable(ref, current_features[name] if name in current_features else None, t)
                for name, ref in reference.features.items()}
    forecast = _variable(reference.forecast, current_forecasts, t)
    slippage = _slippage(orders, t)

    sufficient = [k for k, v in features.items() if v["status"] != "insufficient"]
    drifting = [k for k, v in features.items() if v["status"] == "drift"]
    share = len(drifting) / len(sufficient) if sufficient else None

    causes = []
    if share is not None and share > t.max_drifting_share:
        causes.append(f"{len(drifting)} of {len(sufficient)} features drift "
                      f"({share:.0%} > {t.max_drifting_share:.0%}): {', '.join(sorted(drifting))}")
    if forecast["status"] == "drift":
        causes.append(f"the forecast drifts (PSI {forecast['psi']:.3f}, KS p {forecast['ks_pvalue']:.2g})")
    if slippage["status"] == "drift":
        causes.append(f"mean slippage {slippage['mean_bps']:.1f} bps over {slippage['n']} filled orders "
                      f"exceeds {t.assumed_slippage_bps:g} + {t.slippage_bps:g} bps")

    if causes:
        outcome, reason = Outcome.drift, "; ".join(causes)
    elif len(sufficient) < len(features) / 2 and forecast["status"] == "insufficient":
        outcome = Outcome.inconclusive
        reason = (f"only {len(sufficient)} of {len(features)} features and no forecast have "
                  f">= {t.min_samples} current values")
    else:
        outcome = Outcome.no_drift
        reason = (f"{len(drifting)} of {len(sufficient)} features drift, forecast {forecast['status']}, "
                  f"slippage {slippage['status']}")
    return Decision(
        action=Action.drift, outcome=outcome, reason=reason, model_name=model_name, version=version,
        window=window, thresholds=t.model_dump(),
        metrics={"features": features, FORECAST: forecast, "slippage": slippage,
                 "drifting_features": sorted(drifting), "drifting_share": share},
    )
