"""Feature, prediction and execution-slippage drift against a fixed training reference.

A feature (or the forecast) drifts only when both tests agree: PSI on bins fixed at training
time above ``thresholds.psi`` AND a two-sample KS p-value below ``thresholds.ks_pvalue``. PSI
alone flags small shifts on large samples; KS alone flags trivial shifts with many values.

Execution slippage has two figures, because a slippage cap censors the fills it measures:

- **Filled slippage**: the fills of orders whose status is ``filled`` or ``partially_filled``,
  each fill's signed slippage (bps against its order's reference price, adverse positive, as
  ``fills.slippage_bps`` stores it) weighted by the fill's notional (``qty * price``). That is the
  slippage cost per dollar traded, the unit the backtests' ``assumed_slippage_bps`` is charged in,
  and one large book walk weighs what it cost instead of counting once per level it took. Drift
  when it exceeds ``assumed_slippage_bps + slippage_bps``; inconclusive under ``min_orders`` orders.
- **Cap stops**: the share of orders sent with a ``max_slippage_bps`` that the cap stopped. Every
  fill the cap lets through is within it, so as slippage worsens the filled figure stays flat while
  more orders are rejected (nothing filled) or cut (filled in part, the rest canceled). An order
  counts as stopped when it ended ``rejected``, ``canceled`` or ``expired`` and a lifecycle reason
  names the cap (the paper venue writes ``max_slippage_bps <cap> reached at <book|bar> reference
  <price>``). The denominator is the capped orders a venue has answered (not ``initialized``,
  ``denied`` or still ``submitted``). Drift when the share exceeds ``cap_reject_rate``;
  inconclusive under ``min_capped_orders`` orders.
"""

from __future__ import annotations

from dataclasses import dataclass
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
# Orders a venue has not answered yet (or never saw: ``denied`` is a local risk refusal).
UNANSWERED = frozenset({"initialized", "denied", "submitted"})
STOPPED = frozenset({"rejected", "canceled", "expired"})
CAP_REASON = "max_slippage_bps"
FILL_COLUMNS = ("order_id", "status", "qty", "price", "slippage_bps")
ORDER_COLUMNS = ("order_id", "status", "max_slippage_bps", "filled_qty", "lifecycle")


@dataclass(frozen=True)
class ExecutionEvidence:
    """Execution in the drift window. ``fills``: one row per fill with its order's ``status``
    (columns :data:`FILL_COLUMNS`); ``orders``: one row per order with its ``lifecycle`` (a list of
    ``{ts, from, to, reason}``; columns :data:`ORDER_COLUMNS`)."""

    fills: pd.DataFrame
    orders: pd.DataFrame

    @classmethod
    def empty(cls) -> ExecutionEvidence:
        return cls(pd.DataFrame(columns=list(FILL_COLUMNS)), pd.DataFrame(columns=list(ORDER_COLUMNS)))


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


def _num(frame: pd.DataFrame, column: str) -> npt.NDArray[np.float64]:
    out: npt.NDArray[np.float64] = pd.to_numeric(frame[column], errors="coerce").to_numpy(dtype=float)
    return out


def _slippage(fills: pd.DataFrame, t: DriftThresholds) -> dict[str, Any]:
    """Notional-weighted slippage of the fills of filled|partially_filled orders."""
    f = fills.loc[fills["status"].isin(FILLED)]
    slip, notional = _num(f, "slippage_bps"), np.abs(_num(f, "qty") * _num(f, "price"))
    ok = np.isfinite(slip) & np.isfinite(notional) & (notional > 0)
    s, w = slip[ok], notional[ok]
    n = int(f.loc[ok, "order_id"].nunique())
    mean = float(np.sum(s * w) / np.sum(w)) if len(s) else None
    out: dict[str, Any] = {"mean_bps": mean, "unweighted_mean_bps": float(s.mean()) if len(s) else None,
                           "n": n, "fills": len(s), "notional": float(w.sum())}
    if mean is None or n < t.min_orders:
        return {**out, "status": "inconclusive"}
    return {**out, "status": "drift" if mean > t.assumed_slippage_bps + t.slippage_bps else "stable"}


def cap_stopped(status: str, lifecycle: Any) -> bool:
    """The order ended rejected/canceled/expired and a lifecycle reason names the slippage cap."""
    if status not in STOPPED or not isinstance(lifecycle, list):
        return False
    return any(CAP_REASON in str(event.get("reason") or "") for event in lifecycle if isinstance(event, dict))


def _cap_stops(orders: pd.DataFrame, t: DriftThresholds) -> dict[str, Any]:
    """Share of answered orders with a ``max_slippage_bps`` that the cap stopped."""
    o = orders.loc[np.isfinite(_num(orders, "max_slippage_bps")) & ~orders["status"].isin(UNANSWERED)]
    stopped = np.array([cap_stopped(st, lc) for st, lc in zip(o["status"], o["lifecycle"], strict=True)], bool)
    n, hits = len(o), int(stopped.sum())
    cut = int((stopped & (np.nan_to_num(_num(o, "filled_qty")) > 0)).sum())
    out: dict[str, Any] = {"reject_rate": hits / n if n else None, "stopped": hits, "rejected": hits - cut,
                           "cut": cut, "n": n}
    if n == 0 or n < t.min_capped_orders:
        return {**out, "status": "inconclusive"}
    return {**out, "status": "drift" if hits / n > t.cap_reject_rate else "stable"}


def evaluate_drift(
    reference: DriftReference,
    current_features: pd.DataFrame,
    current_forecasts: pd.Series | None,
    execution: ExecutionEvidence | None,
    thresholds: DriftThresholds,
    *,
    model_name: str,
    version: str | None,
    window: Window,
) -> Decision:
    """Drift of the reference's features, the forecast and execution slippage over ``window``.

    ``drifting_share`` is the share of drifting features among those with enough current values.
    Features absent from ``current_features`` are insufficient; columns without a reference are
    ignored.
    """
    t = thresholds
    features = {name: _variable(ref, current_features[name] if name in current_features else None, t)
                for name, ref in reference.features.items()}
    forecast = _variable(reference.forecast, current_forecasts, t)
    ex = execution or ExecutionEvidence.empty()
    slippage, cap = _slippage(ex.fills, t), _cap_stops(ex.orders, t)

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
        causes.append(f"notional-weighted slippage {slippage['mean_bps']:.1f} bps over {slippage['n']} filled "
                      f"orders exceeds {t.assumed_slippage_bps:g} + {t.slippage_bps:g} bps")
    if cap["status"] == "drift":
        causes.append(f"max_slippage_bps stopped {cap['stopped']} of {cap['n']} capped orders "
                      f"({cap['reject_rate']:.0%} > {t.cap_reject_rate:.0%}; {cap['rejected']} rejected, "
                      f"{cap['cut']} cut)")

    if causes:
        outcome, reason = Outcome.drift, "; ".join(causes)
    elif len(sufficient) < len(features) / 2 and forecast["status"] == "insufficient":
        outcome = Outcome.inconclusive
        reason = (f"only {len(sufficient)} of {len(features)} features and no forecast have "
                  f">= {t.min_samples} current values")
    else:
        outcome = Outcome.no_drift
        reason = (f"{len(drifting)} of {len(sufficient)} features drift, forecast {forecast['status']}, "
                  f"slippage {slippage['status']}, cap stops {cap['status']}")
    return Decision(
        action=Action.drift, outcome=outcome, reason=reason, model_name=model_name, version=version,
        window=window, thresholds=t.model_dump(),
        metrics={"features": features, FORECAST: forecast, "slippage": slippage, "slippage_cap": cap,
                 "drifting_features": sorted(drifting), "drifting_share": share},
    )
